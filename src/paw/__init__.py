"""paw: PEFT fine-tuning, evaluation and LoRA weight transfer for LLMs.

Importing ``paw`` is cheap: torch and transformers are imported only by the functions that need them.
"""

__version__ = "0.1.0"
