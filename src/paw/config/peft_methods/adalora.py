"""AdaLoRA (arXiv 2303.10512) through peft's ``AdaLoraConfig``: LoRA in SVD form ΔW = P·Λ·Q whose per-module
ranks are re-allocated during training by an importance score (sensitivity × uncertainty of each singular
triplet). Every module starts at ``init_r``; between ``tinit`` and ``max_steps − tfinal`` the budget is pruned
to ``target_r`` on average, every ``delta_t`` steps, after each optimizer step (``RankAllocation`` below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, model_validator

from paw.config.peft_methods import METHOD_HELP, TargetedSection

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


class AdaLoRA(TargetedSection):
    method: Literal["adalora"] = Field("adalora", description=METHOD_HELP)
    title: ClassVar[str] = "AdaLoRA"
    instead: ClassVar[dict[str, str]] = {"r": "its ranks are peft.init_r and peft.target_r"}

    alpha: float = Field(16, gt=0, description="Scale of the update, as LoRA's alpha.")
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the adapter's input.")
    init_r: int = Field(12, ge=1, description="Initial rank of every module.")
    target_r: int = Field(8, ge=1, description="Average rank after reallocation.")
    tinit: int = Field(0, ge=0, description="Steps before ranks start being pruned.")
    tfinal: int = Field(0, ge=0, description="Final steps with ranks fixed.")
    delta_t: int = Field(1, ge=1, description="Steps between two reallocations.")

    @model_validator(mode="after")
    def _prunes_down(self) -> AdaLoRA:
        if self.target_r > self.init_r:
            raise ValueError(f"[target_r] ({self.target_r}) cannot exceed peft.init_r ({self.init_r})")
        return self

    def summary(self) -> str:
        return f"adalora r={self.init_r}→{self.target_r} alpha={self.alpha:g} targets={self.targets_text}"

    def fits_run(self, max_steps: int | None, gradient_checkpointing: bool) -> None:
        if max_steps is None:
            raise ValueError("training.max_steps: adalora plans its rank budget over the run; set max_steps")
        if self.tinit + self.tfinal >= max_steps:
            raise ValueError(
                f"peft.tinit: tinit ({self.tinit}) + tfinal ({self.tfinal}) must be below the run's {max_steps} "
                "steps, or AdaLoRA has no steps left to reallocate ranks"
            )

    def to_peft(self, model: Model, max_steps: int | None) -> Any:
        from peft import AdaLoraConfig

        return AdaLoraConfig(
            task_type=self.task_type,
            init_r=self.init_r,
            target_r=self.target_r,
            tinit=self.tinit,
            tfinal=self.tfinal,
            deltaT=self.delta_t,
            total_step=max_steps,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            modules_to_save=self.modules_to_save or None,
        )

    def callbacks(self, model: Model) -> list[Any]:
        from transformers import TrainerCallback

        class RankAllocation(TrainerCallback):
            """Calls ``update_and_allocate`` after each optimizer step, while the gradients are still there."""

            def on_optimizer_step(self, args, state, control, **kwargs):
                model.base_model.update_and_allocate(state.global_step)

        return [RankAllocation()]
