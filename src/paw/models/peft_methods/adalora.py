"""AdaLoRA (arXiv 2303.10512): LoRA in SVD form ΔW = P·Λ·Q whose per-module ranks are re-allocated during
training by an importance score (sensitivity × uncertainty of each singular triplet): every module starts at
``init_r``, and between ``tinit`` and ``total_steps − tfinal`` the budget is pruned to ``target_r`` on average,
every ``delta_t`` steps. The reallocation runs after each optimizer step (``RankAllocation`` below).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paw.errors import PawError
from paw.models.peft_methods import PeftOptions
from paw.models.peft_methods.lora import check_target_modules

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


def check(options: PeftOptions, model: Model) -> None:
    check_target_modules(model, options.target_modules)
    if options.total_steps is None:
        raise PawError("peft.method adalora plans its rank budget over the run: set training.max_steps")
    if options.tinit + options.tfinal >= options.total_steps:
        raise PawError(
            f"peft.tinit ({options.tinit}) + peft.tfinal ({options.tfinal}) must be below the run's "
            f"{options.total_steps} steps, or AdaLoRA has no steps left to reallocate ranks"
        )


def build(options: PeftOptions, model: Model):
    from peft import AdaLoraConfig

    return AdaLoraConfig(
        task_type=options.task_type,
        init_r=options.init_r,
        target_r=options.target_r,
        tinit=options.tinit,
        tfinal=options.tfinal,
        deltaT=options.delta_t,
        total_step=options.total_steps,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.targets,
        modules_to_save=list(options.modules_to_save) or None,
    )


def callbacks(model: Model) -> list[Any]:
    from transformers import TrainerCallback

    class RankAllocation(TrainerCallback):
        """Calls ``update_and_allocate`` after each optimizer step, while the gradients are still there."""

        def on_optimizer_step(self, args, state, control, **kwargs):
            model.base_model.update_and_allocate(state.global_step)

    return [RankAllocation()]
