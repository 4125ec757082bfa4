"""Odds-ratio preference optimisation (``training.objective: orpo``): SFT on the chosen completion plus
``preference.beta`` (ORPO's λ) × the log odds ratio of chosen over rejected, no reference model; through TRL's
ORPOTrainer, which TRL keeps in ``trl.experimental`` (its API may change between TRL releases; paw pins TRL).
Prompts are built as for SFT (``paw.data.preference``, which also checks and reports the rows); TRL tokenises
them."""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

from paw.data.preference import PAIRED, PreferenceData, build_preference_data, to_text_dataset
from paw.train.objectives import data_options
from paw.train.objectives.sft import auto_class, load_base, save_files

if TYPE_CHECKING:
    from paw.config.schema import RunConfig
    from paw.utils.hf_types import Model, Tokenizer

__all__ = ["arguments", "auto_class", "build_data", "load_base", "reported", "save_files", "trainer"]

log = logging.getLogger("paw.train")
REPORTED = (
    "rewards/accuracies",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
    "nll_loss",
    "log_odds_ratio",
)


def experimental(objective: str) -> None:
    """TRL warns on every import of ``trl.experimental``; paw says it once, in its own log."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    log.info("%s runs through trl.experimental (TRL may change its API between releases)", objective)


def reported(config: RunConfig) -> tuple[str, ...]:
    """The trainer's per-step metrics kept in training_report.json."""
    return REPORTED


def build_data(config: RunConfig, tokenizer: Tokenizer) -> tuple[PreferenceData, list[str]]:
    return build_preference_data(data_options(config), tokenizer, PAIRED, text_rows=True), []


def arguments(kwargs: dict[str, Any], config: RunConfig) -> Any:
    experimental("orpo")
    from trl.experimental.orpo import ORPOConfig

    return ORPOConfig(**kwargs, max_length=config.data.max_length, beta=config.preference.beta)


def trainer(
    config: RunConfig, model: Model, tokenizer: Tokenizer, data: PreferenceData, common: dict[str, Any]
):
    from paw.train.experimental_trainers import PawORPOTrainer

    return PawORPOTrainer(
        train_dataset=to_text_dataset(data.train),
        eval_dataset=to_text_dataset(data.val) if data.val else None,
        **common,
    )
