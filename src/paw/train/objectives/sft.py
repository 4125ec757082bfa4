"""Supervised fine-tuning of a causal LM: instruction, chat, prompt/completion or plain-text rows, the loss on the
completion tokens only (unless ``data.train_on_prompt``), through TRL's SFTTrainer; optionally packed, several
examples per row with attention kept inside each (``data.packing``)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paw.data.sft import SftData, build_sft_data, to_dataset
from paw.models.chat import PROMPT_SPEC_FILE, eos_warnings, prompt_spec, uses_chat_template
from paw.train.objectives import data_options
from paw.utils.io import atomic_write_json

if TYPE_CHECKING:
    from paw.config.schema import RunConfig
    from paw.models.load import LoadOptions
    from paw.models.resolve import ResolvedModel
    from paw.utils.hf_types import Model, Tokenizer

log = logging.getLogger("paw.train")


def build_data(config: RunConfig, tokenizer: Tokenizer) -> tuple[SftData, list[str]]:
    data = build_sft_data(data_options(config), tokenizer)
    return data, eos_warnings(tokenizer, uses_chat_template(data.format, config.data.prompt_template))


def load_base(resolved: ResolvedModel, options: LoadOptions, data: SftData) -> Model:
    from paw.models.load import load_causal_lm

    return load_causal_lm(resolved, options, for_training=True)


def auto_class() -> type:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM


def arguments(kwargs: dict[str, Any], config: RunConfig) -> Any:
    from trl import SFTConfig

    extra: dict[str, Any] = {"max_length": config.data.max_length}
    if config.data.packing:  # the packed rows' position_ids tell the collator where examples start
        extra["remove_unused_columns"] = False
    return SFTConfig(**{**kwargs, **extra})


def trainer(config: RunConfig, model: Model, tokenizer: Tokenizer, data: SftData, common: dict[str, Any]):
    from paw.train.trainer import PawSFTTrainer

    train_set, extra = to_dataset(data.train), {}
    if config.data.packing:
        import datasets

        from paw.data.packing import PackedCollator, pack_examples

        rows = pack_examples(data.train.examples, config.data.max_length)
        log.info(
            "packing: %d examples in %d rows of up to %d tokens",
            len(data.train.examples),
            len(rows),
            config.data.max_length,
        )
        train_set = datasets.Dataset.from_list(rows)
        attention = model.config._attn_implementation
        dtype = next(model.parameters()).dtype
        extra["data_collator"] = PackedCollator(tokenizer.pad_token_id, attention, dtype)
    return PawSFTTrainer(
        train_dataset=train_set, eval_dataset=to_dataset(data.val) if data.val else None, **extra, **common
    )


def save_files(directory: Path, tokenizer: Tokenizer, data: SftData, config: RunConfig) -> None:
    """How prompts were built (chat template or Alpaca), so eval and infer prompt the adapter the same way."""
    atomic_write_json(
        directory / PROMPT_SPEC_FILE, prompt_spec(tokenizer, data.format, config.data.prompt_template)
    )


REPORTED = ("mean_token_accuracy",)


def reported(config: RunConfig) -> tuple[str, ...]:
    """The trainer's per-step metrics kept in training_report.json."""
    return REPORTED
