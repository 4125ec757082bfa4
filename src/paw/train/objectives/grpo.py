"""Group relative policy optimisation (``training.objective: grpo``) with verifiable rewards, through TRL's
GRPOTrainer: for each prompt ``grpo.num_generations`` completions are sampled, scored by ``grpo.rewards``
(``paw.train.rewards``), and each is pushed up or down by its reward against its group's. The KL term
(``grpo.beta``) is measured against the base model with the adapter switched off (with ``peft.init_adapter``,
against the adapter as it started). ``training.per_device_train_batch_size`` counts completions, so it must be a
multiple of ``grpo.num_generations`` (TRL's rule)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paw.data.prompts import PromptData, build_prompt_data, to_prompt_dataset
from paw.train.objectives import data_options
from paw.train.objectives.sft import auto_class, load_base, save_files
from paw.train.rewards import fields_needed, reward_function

if TYPE_CHECKING:
    from paw.config.schema import RunConfig
    from paw.utils.hf_types import Model, Tokenizer

__all__ = ["arguments", "auto_class", "build_data", "load_base", "reported", "save_files", "trainer"]

REPORTED = ("reward", "reward_std", "kl", "completions/mean_length", "frac_reward_zero_std")


def reported(config: RunConfig) -> tuple[str, ...]:
    """The mean reward, its spread and KL, and each reward's own mean (``rewards/<name>/mean``)."""
    return REPORTED + tuple(f"rewards/{reward_function(r).__name__}/mean" for r in config.grpo.rewards)


def build_data(config: RunConfig, tokenizer: Tokenizer) -> tuple[PromptData, list[str]]:
    # a reward function that cannot be imported fails here, before anything is written
    for spec in config.grpo.rewards:
        reward_function(spec)
    return build_prompt_data(data_options(config), tokenizer, fields_needed(config.grpo.rewards)), []


def arguments(kwargs: dict[str, Any], config: RunConfig) -> Any:
    from trl import GRPOConfig

    g = config.grpo
    kwargs = {k: v for k, v in kwargs.items() if k != "include_num_input_tokens_seen"}  # GRPO counts its own
    return GRPOConfig(
        **kwargs,
        num_generations=g.num_generations,
        max_completion_length=g.max_completion_length,
        temperature=g.temperature,
        beta=g.beta,
        loss_type=g.loss_type,
        reward_weights=[r.weight for r in g.rewards],
    )


def trainer(config: RunConfig, model: Model, tokenizer: Tokenizer, data: PromptData, common: dict[str, Any]):
    from paw.train.trainer import PawGRPOTrainer

    return PawGRPOTrainer(
        reward_funcs=[reward_function(r) for r in config.grpo.rewards],
        train_dataset=to_prompt_dataset(data.train),
        eval_dataset=to_prompt_dataset(data.val) if data.val else None,
        reference_is_base=getattr(config.peft, "init_adapter", None) is None,
        **common,
    )
