"""Prompt tuning (arXiv 2104.08691): ``num_virtual_tokens`` trained input embeddings prepended to every
sequence; initialised from the embeddings of ``prompt_init_text`` when given (the paper's strongest init),
else at random. Only the embedding layer's input changes, so it fits any architecture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paw.models.peft_methods import PeftOptions

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


def check(options: PeftOptions, model: Model) -> None:
    return None


def build(options: PeftOptions, model: Model):
    from peft import PromptTuningConfig, PromptTuningInit

    name = getattr(getattr(model, "config", None), "_name_or_path", None)
    return PromptTuningConfig(
        task_type=options.task_type,
        num_virtual_tokens=options.num_virtual_tokens,
        prompt_tuning_init=PromptTuningInit.TEXT if options.prompt_init_text else PromptTuningInit.RANDOM,
        prompt_tuning_init_text=options.prompt_init_text,
        tokenizer_name_or_path=name if options.prompt_init_text else None,
    )
