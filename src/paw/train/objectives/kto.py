"""Kahneman-Tversky optimisation (``training.objective: kto``): single completions labelled desirable or not,
no pairs needed, through TRL's KTOTrainer. Prompts are built as for SFT (``paw.data.preference``), which also
checks and reports the rows; TRL tokenises them and builds its KL estimate's mismatched pairs. The reference is the
base model with the adapter switched off (with ``peft.init_adapter``, the adapter as it started)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paw.data.preference import UNPAIRED, PreferenceData, build_preference_data, to_text_dataset
from paw.train.objectives import data_options
from paw.train.objectives.sft import auto_class, load_base, save_files

if TYPE_CHECKING:
    from paw.config.schema import RunConfig
    from paw.utils.hf_types import Model, Tokenizer

__all__ = ["arguments", "auto_class", "build_data", "load_base", "reported", "save_files", "trainer"]

REPORTED = ("rewards/chosen", "rewards/rejected", "rewards/margins", "kl", "logps/chosen", "logps/rejected")


def reported(config: RunConfig) -> tuple[str, ...]:
    """The trainer's per-step metrics kept in training_report.json."""
    return REPORTED


def build_data(config: RunConfig, tokenizer: Tokenizer) -> tuple[PreferenceData, list[str]]:
    return build_preference_data(data_options(config), tokenizer, UNPAIRED, text_rows=True), []


def arguments(kwargs: dict[str, Any], config: RunConfig) -> Any:
    from trl import KTOConfig

    p = config.preference
    return KTOConfig(
        **kwargs,
        max_length=config.data.max_length,
        beta=p.beta,
        loss_type=p.kto_loss(),
        desirable_weight=p.desirable_weight,
        undesirable_weight=p.undesirable_weight,
    )


def trainer(
    config: RunConfig, model: Model, tokenizer: Tokenizer, data: PreferenceData, common: dict[str, Any]
):
    from paw.train.trainer import PawKTOTrainer

    return PawKTOTrainer(
        train_dataset=to_text_dataset(data.train),
        eval_dataset=to_text_dataset(data.val) if data.val else None,
        reference_is_base=getattr(config.peft, "init_adapter", None) is None,
        **common,
    )
