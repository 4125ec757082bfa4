"""Names for the Hugging Face types paw passes around, for annotations only: imported under TYPE_CHECKING, so
annotating with them never imports torch, transformers or peft at run time (``paw --help`` stays instant)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    Model: TypeAlias = PreTrainedModel | PeftModel  # a base model, or one wrapped with an adapter
    Tokenizer: TypeAlias = PreTrainedTokenizerBase
