"""Quiet the Hugging Face stack: paw draws its own progress and says what matters itself."""

from __future__ import annotations


def quiet_hf() -> None:
    """Silence the per-file progress bars of transformers/datasets/hub: paw draws its own progress."""
    import os
    import warnings

    # Deprecation notices of the stack (e.g. gradient_checkpointing -> activation_checkpointing) are not the user's.
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|trl|peft)\.")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import datasets
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
