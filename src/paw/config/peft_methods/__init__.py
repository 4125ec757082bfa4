"""The ``peft`` section: one pydantic section per PEFT method, chosen by ``peft.method``.

A method is one module here of one shape: its section (every option it takes, described), how the section
becomes peft's own config (``to_peft``), what it refuses about the run (``fits_run``) or the model
(``check_model``), and the training callbacks it needs. ``REGISTRY`` maps the method's name to ``module:Class``;
adding a method is one module and one line there (peft keeps each method's config beside its model the same
way, ``peft/tuners/<method>/config.py``). An option of another method is refused with the methods it belongs
to, so a mistyped ``method`` is never silently LoRA.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, SerializeAsAny, ValidationError

from paw.config.section import Section
from paw.utils.suggest import did_you_mean

if TYPE_CHECKING:
    from paw.utils.hf_types import Model

REGISTRY = {
    "lora": "paw.config.peft_methods.lora:LoRA",
    "dora": "paw.config.peft_methods.lora:DoRA",
    "adalora": "paw.config.peft_methods.adalora:AdaLoRA",
    "ia3": "paw.config.peft_methods.ia3:IA3",
    "prefix": "paw.config.peft_methods.prefix:PrefixTuning",
    "prompt": "paw.config.peft_methods.prompt:PromptTuning",
}
DEFAULT_METHOD = "lora"
METHOD_HELP = (
    "PEFT method: lora, dora (LoRA with weight decomposition), adalora (LoRA with ranks re-allocated during "
    "training), ia3 (learned activation scales), prefix (prefix tuning), prompt (prompt tuning). Each takes its "
    "own options (docs/configuration.md)."
)


class PeftSection(Section):
    """What every method's section has. A method subclasses it with ``method: Literal["<name>"]``
    (described by ``METHOD_HELP``)."""

    method: str = Field(DEFAULT_METHOD, description=METHOD_HELP)
    task_type: Literal["CAUSAL_LM", "SEQ_CLS"] = Field(
        "CAUSAL_LM",
        description="CAUSAL_LM (SFT on instructions/chat/text) or SEQ_CLS (sequence classification with a "
        "trained head: text or sentence pairs with a label).",
    )

    title: ClassVar[str] = "PEFT"  # how messages name the method ("prefix tuning")
    virtual_tokens: ClassVar[bool] = False  # trains virtual tokens: nothing to merge, transfer or pack
    instead: ClassVar[dict[str, str]] = {}  # another method's option -> what this method has in its place

    def summary(self) -> str:
        """One line for plans and reports (``lora r=32 alpha=64 targets=q_proj, k_proj``)."""
        return self.method

    def fits_run(self, max_steps: int | None, gradient_checkpointing: bool) -> None:
        """Refuse (ValueError ``"section.key: why"``) what this method cannot do in the run around it."""

    def check_model(self, model: Model) -> None:
        """Refuse (PawError) what does not fit ``model``; the target modules are checked for every method."""

    def to_peft(self, model: Model, max_steps: int | None) -> Any:
        """peft's config for this section (``LoraConfig``, ...), for ``get_peft_model``."""
        raise NotImplementedError(f"{type(self).__name__} does not say how to build its peft config")

    def callbacks(self, model: Model) -> list[Any]:
        """``transformers.TrainerCallback``s the method needs while training ``model``."""
        return []


class TargetedSection(PeftSection):
    """A method that adapts named modules of the model."""

    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="Module names (suffixes) to adapt, or 'all-linear' for every linear layer but the head.",
    )
    modules_to_save: list[str] = Field(
        default_factory=list, description="Modules trained fully and saved with the adapter."
    )

    @property
    def targets_text(self) -> str:
        return self.target_modules if isinstance(self.target_modules, str) else ", ".join(self.target_modules)


class VirtualTokensSection(PeftSection):
    """A prompt-learning method: trained virtual tokens, the model's weights untouched."""

    virtual_tokens: ClassVar[bool] = True
    instead: ClassVar[dict[str, str]] = {
        key: "it trains virtual tokens and adapts no module (the size is peft.num_virtual_tokens)"
        for key in ("r", "alpha", "target_modules", "modules_to_save", "bias")
    }

    num_virtual_tokens: int = Field(20, ge=1, description="Number of virtual tokens.")

    def summary(self) -> str:
        return f"{self.method} {self.num_virtual_tokens} virtual tokens"


def section_class(method: str) -> type[PeftSection]:
    """The section class registered for ``method`` (ValueError naming the choices when there is none)."""
    if method not in REGISTRY:
        raise ValueError(
            f"[method] '{method}' is unknown{did_you_mean(str(method), REGISTRY)}; choose from {', '.join(REGISTRY)}"
        )
    module, name = REGISTRY[method].split(":")
    return getattr(importlib.import_module(module), name)


def _misplaced(section: type[PeftSection], data: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, why) for each key ``section`` does not take: another method's option, or an unknown key."""
    found = []
    for key in data:
        if key in section.model_fields:
            continue
        owners = [name for name in REGISTRY if key in section_class(name).model_fields]
        if not owners:
            found.append((key, f"unknown key{did_you_mean(str(key), section.model_fields)}"))
            continue
        why = section.instead.get(key, f"it is an option of {', '.join(owners)}")
        found.append((key, f"does not apply to {section.title} (peft.method '{data['method']}'): {why}"))
    return found


def parse_section(value: Any) -> Any:
    """Validate a ``peft`` mapping as the section of its ``method``."""
    if not isinstance(value, dict):
        return value  # a section already built, or a wrong type pydantic will name
    data = {"method": DEFAULT_METHOD, **value}
    if not isinstance(data["method"], str):
        raise ValueError(f"[method] must be one of {', '.join(REGISTRY)}, got {data['method']!r}")
    section = section_class(data["method"])
    misplaced = _misplaced(section, data)
    if misplaced:
        raise ValidationError.from_exception_data(
            "peft",
            [
                {"type": "value_error", "loc": (key,), "input": data[key], "ctx": {"error": why}}
                for key, why in misplaced
            ],
        )
    return section.model_validate(data)


def default_section() -> PeftSection:
    return section_class(DEFAULT_METHOD)()


PeftField = Annotated[SerializeAsAny[PeftSection], BeforeValidator(parse_section)]
"""The type of a config's ``peft`` field: the section of whichever method it names."""
