"""Load a tokenizer and a causal LM from a :class:`ResolvedModel`, with family quirks handled in one place."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paw.errors import PawError
from paw.models.resolve import ResolvedModel
from paw.utils.hf import quiet_hf
from paw.utils.processes import local_rank

# Family quirks, keyed by config.model_type. Gemma-2: SDPA with a padding mask gives NaN, and its
# attention soft-capping is only implemented in eager attention.
FORCED_ATTENTION = {"gemma2": "eager"}


@dataclass(frozen=True)
class LoadOptions:
    dtype: str = "auto"
    attn_implementation: str = "auto"
    gradient_checkpointing: bool = False
    trust_remote_code: bool = False
    revision: str | None = None
    quantization: str = "none"


def _hub_error(model: ResolvedModel, err: Exception) -> PawError:
    return PawError(
        f"could not load '{model.name}' from '{model.location}': {type(err).__name__}: {str(err).splitlines()[0]}. "
        "Offline? Download it where the hub is reachable and point model.name_or_path (or paths.models_dir) at "
        "the local copy"
    )


def load_tokenizer(model: ResolvedModel, options: LoadOptions = LoadOptions()):
    from transformers import AutoTokenizer

    quiet_hf()
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            model.location, revision=options.revision, trust_remote_code=options.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise _hub_error(model, err) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def torch_dtype(name: str):
    import torch

    if name == "auto":
        if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[name]


def load_config(model: ResolvedModel, options: LoadOptions = LoadOptions()):
    from transformers import AutoConfig

    quiet_hf()
    try:
        return AutoConfig.from_pretrained(
            model.location, revision=options.revision, trust_remote_code=options.trust_remote_code
        )
    except (OSError, ValueError) as err:
        raise _hub_error(model, err) from None


def attention_for(model_type: str, requested: str) -> str:
    """The attention implementation to use: a family quirk wins over the request; 'auto' means sdpa."""
    if model_type in FORCED_ATTENTION:
        return FORCED_ATTENTION[model_type]
    return "sdpa" if requested == "auto" else requested


def _load_pretrained(
    auto_class: Any,
    model: ResolvedModel,
    options: LoadOptions,
    device_map: Any = None,
    for_training: bool = False,
    **extra: Any,
):
    """``auto_class.from_pretrained`` with paw's options: dtype, attention (family quirks), bitsandbytes
    quantization (QLoRA; prepared for k-bit training when ``for_training``), gradient checkpointing."""

    from paw.models import quantization as quant

    quant.check_quantization(options.quantization)
    config = load_config(model, options)
    if options.quantization != "none":
        extra["quantization_config"] = quant.bnb_config(options.quantization)
        # each process holds its whole quantized copy on its own GPU
        device_map = device_map or {"": local_rank()}
    try:
        lm = auto_class.from_pretrained(
            model.location,
            revision=options.revision,
            trust_remote_code=options.trust_remote_code,
            dtype=torch_dtype(options.dtype),
            attn_implementation=attention_for(config.model_type, options.attn_implementation),
            device_map=device_map,
            **extra,
        )
    except (OSError, ValueError) as err:
        raise _hub_error(model, err) from None
    if options.quantization != "none" and for_training:
        return quant.prepare_for_training(lm, options.gradient_checkpointing)
    if options.gradient_checkpointing:
        lm.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        lm.config.use_cache = False
    return lm


def load_causal_lm(
    model: ResolvedModel,
    options: LoadOptions = LoadOptions(),
    device_map: Any = None,
    for_training: bool = False,
):
    """Load the base model for training or inference (quantized with bitsandbytes when asked: QLoRA)."""
    from transformers import AutoModelForCausalLM

    return _load_pretrained(AutoModelForCausalLM, model, options, device_map, for_training)


def load_sequence_classifier(model: ResolvedModel, options: LoadOptions, labels: list[str]):
    """An encoder (BERT/RoBERTa) or decoder with a fresh classification head of ``len(labels)`` outputs."""
    from transformers import AutoModelForSequenceClassification

    lm = _load_pretrained(
        AutoModelForSequenceClassification,
        model,
        options,
        for_training=True,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
    )
    if lm.config.pad_token_id is None:  # decoders: the head reads the last non-pad token
        lm.config.pad_token_id = lm.config.eos_token_id
    return lm
