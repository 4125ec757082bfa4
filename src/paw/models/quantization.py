"""Quantized base models for QLoRA (arXiv 2305.14314) through bitsandbytes.

``4bit``: NF4 weights with double quantization (the quantization constants quantized too, ~0.37 bit/param saved)
and compute in bf16 (fp16 where bf16 is unsupported); ``8bit``: LLM.int8(). The base is then prepared for k-bit
training (norms and head upcast to fp32, input gradients enabled for checkpointing), and training defaults to
the paged 8-bit AdamW of the paper unless ``training.optim`` says otherwise. bitsandbytes needs a CUDA GPU: on any
other machine the config is refused before anything is loaded.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Model

QLORA_OPTIMIZER = "paged_adamw_8bit"


def check_quantization(quantization: str) -> None:
    """A clear error, before any loading, where 4-/8-bit cannot run."""
    if quantization == "none":
        return
    import torch

    if not torch.cuda.is_available():
        raise PawError(
            f"model.quantization '{quantization}' needs a CUDA GPU (bitsandbytes); this machine has none. "
            "Set model.quantization: none (LoRA in full precision) or run on a GPU"
        )
    if importlib.util.find_spec("bitsandbytes") is None:
        raise PawError(
            f"model.quantization '{quantization}' needs bitsandbytes: pip install 'paw[qlora]' (or bitsandbytes)"
        )


def bnb_config(quantization: str) -> Any:
    """The ``BitsAndBytesConfig`` for ``4bit`` (NF4, double quantization) or ``8bit``."""
    import torch
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_quant_storage=compute,
    )


def prepare_for_training(model: Model, gradient_checkpointing: bool) -> Any:
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
    )
