"""Direct preference optimisation (``training.objective: dpo``): prompt/chosen/rejected pairs, TRL's DPOTrainer
and its losses (``preference.loss_type``: DPO, IPO, SLiC's hinge, robust DPO, RPO with ``preference.rpo_alpha``,
...). The reference is the base model with the adapter switched off, so no second copy of the weights is held;
with ``peft.init_adapter`` (DPO after SFT) it is the adapter as it started, a frozen adapter-sized copy."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paw.data.preference import PAIRED, PreferenceData, build_preference_data, to_preference_dataset
from paw.train.objectives import data_options
from paw.train.objectives.sft import auto_class, load_base, save_files

if TYPE_CHECKING:
    from paw.config.schema import RunConfig
    from paw.utils.hf_types import Model, Tokenizer

__all__ = ["arguments", "auto_class", "build_data", "load_base", "reported", "save_files", "trainer"]

# TRL's per-step preference metrics kept in training_report.json (eval_<name> for the validation split)
REPORTED = (
    "rewards/accuracies",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
    "logps/chosen",
    "logps/rejected",
)


def build_data(config: RunConfig, tokenizer: Tokenizer) -> tuple[PreferenceData, list[str]]:
    return build_preference_data(data_options(config), tokenizer, PAIRED), []


def arguments(kwargs: dict[str, Any], config: RunConfig) -> Any:
    from trl import DPOConfig

    p = config.preference
    losses = p.dpo_loss()
    extra: dict[str, Any] = {
        "max_length": config.data.max_length,
        "beta": p.beta,
        "loss_type": losses,
        "label_smoothing": p.label_smoothing,
    }
    if p.rpo_alpha:
        extra["loss_weights"] = [1.0, p.rpo_alpha]
    return DPOConfig(**{**kwargs, **extra})


def trainer(
    config: RunConfig, model: Model, tokenizer: Tokenizer, data: PreferenceData, common: dict[str, Any]
):
    from paw.train.trainer import PawDPOTrainer

    return PawDPOTrainer(
        train_dataset=to_preference_dataset(data.train),
        eval_dataset=to_preference_dataset(data.val) if data.val else None,
        reference_is_base=getattr(config.peft, "init_adapter", None) is None,
        **common,
    )


def reported(config: RunConfig) -> tuple[str, ...]:
    """The trainer's per-step metrics kept in training_report.json."""
    return REPORTED
