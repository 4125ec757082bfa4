"""SimPO (``training.objective: simpo``): the length-normalised log-likelihood of chosen over rejected, scaled by
``preference.beta`` and asked to beat a target margin ``preference.simpo_gamma``, no reference model; through
TRL's CPOTrainer with ``loss_type: simpo`` and no behaviour-cloning term (``cpo_alpha: 0``), which TRL keeps in
``trl.experimental``. The SimPO paper's settings are around beta 2.0-2.5 and gamma 0.5-1.5 (gamma/beta ≈ 0.5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paw.data.preference import PreferenceData, to_text_dataset
from paw.train.objectives.orpo import auto_class, build_data, experimental, load_base, save_files

if TYPE_CHECKING:
    from paw.config.schema import RunConfig
    from paw.utils.hf_types import Model, Tokenizer

__all__ = ["arguments", "auto_class", "build_data", "load_base", "reported", "save_files", "trainer"]

REPORTED = ("rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "nll_loss")


def reported(config: RunConfig) -> tuple[str, ...]:
    """The trainer's per-step metrics kept in training_report.json."""
    return REPORTED


def arguments(kwargs: dict[str, Any], config: RunConfig) -> Any:
    experimental("simpo")
    from trl.experimental.cpo import CPOConfig

    p = config.preference
    return CPOConfig(
        **kwargs,
        max_length=config.data.max_length,
        beta=p.beta,
        loss_type="simpo",
        cpo_alpha=0.0,
        simpo_gamma=p.simpo_gamma,
    )


def trainer(
    config: RunConfig, model: Model, tokenizer: Tokenizer, data: PreferenceData, common: dict[str, Any]
):
    from paw.train.experimental_trainers import PawCPOTrainer

    return PawCPOTrainer(
        train_dataset=to_text_dataset(data.train),
        eval_dataset=to_text_dataset(data.val) if data.val else None,
        **common,
    )
