"""Prefix tuning (arXiv 2101.00190): ``num_virtual_tokens`` trained key/value vectors prepended in every
attention layer (through an MLP re-parametrisation with ``prefix_projection``); the model's weights are frozen
and untouched, so a prefix adapter cannot be merged or transferred. peft refuses it with gradient checkpointing
(the config check says so before any loading).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from paw.models.peft_methods import PeftOptions

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


def check(options: PeftOptions, model: Model) -> None:
    return None


def build(options: PeftOptions, model: Model):
    from peft import PrefixTuningConfig

    return PrefixTuningConfig(
        task_type=options.task_type,
        num_virtual_tokens=options.num_virtual_tokens,
        prefix_projection=options.prefix_projection,
    )
