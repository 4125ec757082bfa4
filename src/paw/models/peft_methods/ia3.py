"""IA³ (arXiv 2205.05638): learned vectors that rescale activations — keys, values and the feed-forward input —
h ↦ l ⊙ h; about 0.01% of the parameters of the model and no rank to choose.

``target_modules`` left at its default uses peft's per-architecture choice (e.g. k/v/down_proj for Llama);
``feedforward_modules`` (scaled at their input) must be among the targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paw.errors import PawError
from paw.models.peft_methods import PeftOptions, model_type
from paw.models.peft_methods.lora import check_target_modules

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


def check(options: PeftOptions, model: Model) -> None:
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as DEFAULTS

    kind = model_type(model)
    if options.target_modules == "all-linear" and kind not in DEFAULTS:
        raise PawError(
            f"peft.method ia3 has no default target modules for {kind}; set peft.target_modules (e.g. the "
            "attention key/value projections and the MLP's down projection) and peft.feedforward_modules"
        )
    if options.target_modules != "all-linear":
        check_target_modules(model, options.target_modules)
        missing = set(options.feedforward_modules or ()) - set(options.target_modules)
        if missing:
            raise PawError(
                f"peft.feedforward_modules: {', '.join(sorted(missing))} must also be in peft.target_modules"
            )


def build(options: PeftOptions, model: Model):
    from peft import IA3Config

    default = options.target_modules == "all-linear"
    return IA3Config(
        task_type=options.task_type,
        target_modules=None if default else options.targets,
        feedforward_modules=None if default else list(options.feedforward_modules or ()),
        modules_to_save=list(options.modules_to_save) or None,
    )
