"""LoRA/DoRA/rsLoRA adapters via peft, with target modules checked against the model first.

ΔW = (α/r)·B·A (α/√r with rsLoRA); DoRA (arXiv 2402.09353) re-normalises W + ΔW column-wise and learns the
magnitudes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paw.errors import PawError


@dataclass(frozen=True)
class LoraOptions:
    r: int = 8
    alpha: float = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] | str = "all-linear"
    use_dora: bool = False
    use_rslora: bool = False
    bias: str = "none"
    modules_to_save: tuple[str, ...] = ()


def linear_module_names(model: Any) -> list[str]:
    """Distinct leaf names of the model's linear layers (e.g. q_proj, down_proj), output head excluded."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    return sorted(names)


def check_target_modules(model: Any, targets: tuple[str, ...] | str) -> None:
    """Raise a PawError naming every target module that is not in the model, with what is there."""
    if targets == "all-linear":
        return
    present = linear_module_names(model)
    all_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in all_names]
    if missing:
        model_type = getattr(getattr(model, "config", None), "model_type", "this model")
        raise PawError(
            f"peft.target_modules: {', '.join(repr(m) for m in missing)} not found in {model_type}; "
            f"its linear modules are: {', '.join(present)} (or use 'all-linear')"
        )


def lora_config(options: LoraOptions):
    from peft import LoraConfig, TaskType

    targets = (
        options.target_modules if isinstance(options.target_modules, str) else list(options.target_modules)
    )
    return LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=targets,
        use_dora=options.use_dora,
        use_rslora=options.use_rslora,
        bias=options.bias,
        modules_to_save=list(options.modules_to_save) or None,
    )


def add_lora(model: Any, options: LoraOptions, init_adapter: str | None = None):
    """Wrap ``model`` in a PeftModel: a fresh LoRA adapter, or a trainable copy of ``init_adapter``'s weights."""
    from peft import get_peft_model

    if init_adapter is None:
        check_target_modules(model, options.target_modules)
        return get_peft_model(model, lora_config(options))
    from paw.models.adapter_files import attach_adapter, check_adapter_dir

    label = "peft.init_adapter"
    return attach_adapter(model, check_adapter_dir(init_adapter, label), label, trainable=True)
