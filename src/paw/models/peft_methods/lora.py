"""LoRA, DoRA and rsLoRA via peft, with target modules checked against the model first.

ΔW = (α/r)·B·A (α/√r with rsLoRA); DoRA (arXiv 2402.09353) re-normalises W + ΔW column-wise and learns the
magnitudes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paw.errors import PawError
from paw.models.peft_methods import PeftOptions

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


def linear_module_names(model: Model) -> list[str]:
    """Distinct leaf names of the model's linear layers (e.g. q_proj, down_proj), output head excluded."""
    import torch

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    return sorted(names)


def check_target_modules(model: Model, targets: tuple[str, ...] | str) -> None:
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


def check(options: PeftOptions, model: Model) -> None:
    check_target_modules(model, options.target_modules)


def build(options: PeftOptions, model: Model):
    from peft import LoraConfig

    return LoraConfig(
        task_type=options.task_type,
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.targets,
        use_dora=options.use_dora or options.method == "dora",
        use_rslora=options.use_rslora,
        bias=options.bias,
        modules_to_save=list(options.modules_to_save) or None,
    )
