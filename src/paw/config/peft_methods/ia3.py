"""IA³ (arXiv 2205.05638) through peft's ``IA3Config``: learned vectors that rescale activations — keys, values
and the feed-forward input — h ↦ l ⊙ h; about 0.01% of the parameters of the model and no rank to choose.

``target_modules`` left at 'all-linear' means peft's per-architecture choice (e.g. k/v/down_proj for Llama);
``feedforward_modules`` (scaled at their input) must be among the targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from paw.config.peft_methods import METHOD_HELP, TargetedSection
from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


class IA3(TargetedSection):
    method: Literal["ia3"] = Field("ia3", description=METHOD_HELP)
    title: ClassVar[str] = "IA3"
    instead: ClassVar[dict[str, str]] = {
        key: "IA3 learns scales, it has no rank" for key in ("r", "alpha", "use_rslora")
    }

    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear",
        description="Module names (suffixes) to scale, or 'all-linear' for peft's choice for the architecture.",
    )
    feedforward_modules: list[str] | None = Field(
        None, description="Modules scaled at their input (must be among target_modules)."
    )

    @model_validator(mode="after")
    def _feedforward_among_targets(self) -> IA3:
        if self.feedforward_modules and self.target_modules == "all-linear":
            raise ValueError("[feedforward_modules] needs peft.target_modules listed (it must be among them)")
        if self.feedforward_modules and self.target_modules != "all-linear":
            missing = set(self.feedforward_modules) - set(self.target_modules)
            if missing:
                raise ValueError(
                    f"[feedforward_modules] {', '.join(sorted(missing))} must also be in peft.target_modules"
                )
        return self

    def summary(self) -> str:
        return f"ia3 targets={self.targets_text}"

    def check_model(self, model: Model) -> None:
        from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as DEFAULTS

        kind = getattr(getattr(model, "config", None), "model_type", "this model")
        if self.target_modules == "all-linear" and kind not in DEFAULTS:
            raise PawError(
                f"peft.method ia3 has no default target modules for {kind}; set peft.target_modules (e.g. the "
                "attention key/value projections and the MLP's down projection) and peft.feedforward_modules"
            )

    def to_peft(self, model: Model, max_steps: int | None) -> Any:
        from peft import IA3Config

        default = self.target_modules == "all-linear"
        return IA3Config(
            task_type=self.task_type,
            target_modules=None if default else self.target_modules,
            feedforward_modules=None if default else list(self.feedforward_modules or ()),
            modules_to_save=self.modules_to_save or None,
        )
