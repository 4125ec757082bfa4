"""Put a trainable adapter on a model: a fresh one of the ``peft`` section's method (see
``paw.config.peft_methods``), or a trainable copy of ``peft.init_adapter``; checked against the model first.
Every method trains, saves (``adapter_config.json`` + ``adapter_model.safetensors``) and loads back like LoRA.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paw.errors import PawError

if TYPE_CHECKING:
    from paw.config.peft_methods import PeftSection
    from paw.utils.hf_types import Model


def model_type(model: Model) -> str:
    return getattr(getattr(model, "config", None), "model_type", "this model")


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


def check_target_modules(model: Model, targets: list[str] | str) -> None:
    """Raise a PawError naming every target module that is not in the model, with what is there."""
    if targets == "all-linear":
        return
    all_names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in targets if t not in all_names]
    if missing:
        raise PawError(
            f"peft.target_modules: {', '.join(repr(m) for m in missing)} not found in {model_type(model)}; "
            f"its linear modules are: {', '.join(linear_module_names(model))} (or use 'all-linear')"
        )


def check_fits(model: Model, section: PeftSection) -> None:
    """Refuse (PawError) a ``peft`` section that does not fit ``model``: its target modules, then the method's
    own checks. Works on a model without weights (``--validate-only``)."""
    check_target_modules(model, getattr(section, "target_modules", "all-linear"))
    section.check_model(model)


def add_adapter(model: Model, section: PeftSection, max_steps: int | None):
    """Wrap ``model`` in a PeftModel: a fresh adapter of ``section.method``, or a trainable copy of the
    section's ``init_adapter`` (LoRA)."""
    from peft import get_peft_model

    init_adapter = getattr(section, "init_adapter", None)
    if init_adapter is not None:
        from paw.models.adapter_files import attach_adapter, check_adapter_dir

        label = "peft.init_adapter"
        return attach_adapter(model, check_adapter_dir(init_adapter, label), label, trainable=True)
    check_fits(model, section)
    try:
        wrapped = get_peft_model(model, section.to_peft(model, max_steps))
    except (ValueError, TypeError, NotImplementedError, KeyError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PawError(f"peft.method '{section.method}' does not fit {model_type(model)}: {reason}") from None
    check_ranks(wrapped)
    return wrapped


def check_ranks(model: Model) -> None:
    """A rank above a module's smaller dimension cannot be meant: the update of a d×k layer has rank ≤ min(d, k),
    so the extra rank only costs memory and changes the scaling. Refused with the largest rank that fits."""
    worst = None
    for name, layer in model.named_modules():
        ranks, base = getattr(layer, "r", None), getattr(layer, "base_layer", None)
        if not isinstance(ranks, dict) or base is None:
            continue
        dims = (getattr(base, "in_features", None), getattr(base, "out_features", None))
        if None in dims:
            continue
        for r in ranks.values():
            if r > min(dims) and (worst is None or min(dims) < worst[2]):
                worst = (name.removeprefix("base_model.model."), dims, min(dims), r)
    if worst is not None:
        name, (d_in, d_out), limit, r = worst
        raise PawError(
            f"peft.r {r} exceeds what {name} ({d_in}→{d_out}) can hold: a LoRA update of it has rank at most "
            f"{limit}; use peft.r ≤ {limit} (or leave that module out of peft.target_modules)"
        )
