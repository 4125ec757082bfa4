"""PEFT methods, one module each: ``build(options, model)`` returns the peft config, ``check(options, model)``
refuses what does not fit (a PawError saying why). Selected by ``peft.method``; every method trains, saves
(``adapter_config.json`` + ``adapter_model.safetensors``) and loads back like LoRA.

Adding a method is adding one module and one line to ``REGISTRY``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Model

REGISTRY = {
    "lora": "paw.models.peft_methods.lora",
    "dora": "paw.models.peft_methods.lora",
    "adalora": "paw.models.peft_methods.adalora",
    "ia3": "paw.models.peft_methods.ia3",
    "prefix": "paw.models.peft_methods.prefix",
    "prompt": "paw.models.peft_methods.prompt",
}
PROMPT_LEARNING = ("prefix", "prompt")  # virtual tokens, no weight update: nothing to merge or transfer


@dataclass(frozen=True)
class PeftOptions:
    method: str = "lora"
    task_type: str = "CAUSAL_LM"
    r: int = 8
    alpha: float = 16
    dropout: float = 0.0
    target_modules: tuple[str, ...] | str = "all-linear"
    use_dora: bool = False
    use_rslora: bool = False
    bias: str = "none"
    modules_to_save: tuple[str, ...] = ()
    num_virtual_tokens: int = 20
    prefix_projection: bool = False
    prompt_init_text: str | None = None
    init_r: int = 12
    target_r: int = 8
    tinit: int = 0
    tfinal: int = 0
    delta_t: int = 1
    feedforward_modules: tuple[str, ...] | None = None
    total_steps: int | None = None  # AdaLoRA plans its rank budget over the whole run (set by the recipe)

    @property
    def targets(self) -> list[str] | str:
        return self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)


def method_module(name: str) -> ModuleType:
    if name not in REGISTRY:
        raise PawError(f"peft.method '{name}' is unknown; choose from {', '.join(REGISTRY)}")
    return importlib.import_module(REGISTRY[name])


def model_type(model: Model) -> str:
    return getattr(getattr(model, "config", None), "model_type", "this model")


def add_adapter(model: Model, options: PeftOptions, init_adapter: str | None = None):
    """Wrap ``model`` in a PeftModel: a fresh adapter of ``options.method``, or a trainable copy of
    ``init_adapter``'s weights."""
    from peft import get_peft_model

    if init_adapter is not None:
        from paw.models.adapter_files import attach_adapter, check_adapter_dir

        label = "peft.init_adapter"
        return attach_adapter(model, check_adapter_dir(init_adapter, label), label, trainable=True)
    module = method_module(options.method)
    module.check(options, model)
    try:
        wrapped = get_peft_model(model, module.build(options, model))
    except (ValueError, TypeError, NotImplementedError, KeyError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PawError(f"peft.method '{options.method}' does not fit {model_type(model)}: {reason}") from None
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


def training_callbacks(model: Model, options: PeftOptions) -> list[Any]:
    """Callbacks a method needs during training (AdaLoRA's rank reallocation)."""
    module = method_module(options.method)
    return module.callbacks(model) if hasattr(module, "callbacks") else []
