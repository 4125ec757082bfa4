"""Prefix tuning (arXiv 2101.00190) through peft's ``PrefixTuningConfig``: ``num_virtual_tokens`` trained
key/value vectors prepended in every attention layer (through an MLP re-parametrisation with
``prefix_projection``); the model's weights are frozen and untouched, so a prefix adapter cannot be merged or
transferred.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from paw.config.peft_methods import METHOD_HELP, VirtualTokensSection

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


class PrefixTuning(VirtualTokensSection):
    method: Literal["prefix"] = Field("prefix", description=METHOD_HELP)
    title: ClassVar[str] = "prefix tuning"

    prefix_projection: bool = Field(
        False, description="Re-parametrise the prefix through an MLP (more stable, more memory)."
    )

    def fits_run(self, max_steps: int | None, gradient_checkpointing: bool) -> None:
        if gradient_checkpointing:  # peft refuses it: the prefix lives in the attention cache
            raise ValueError(
                "peft.method: prefix tuning does not work with model.gradient_checkpointing (peft refuses it: the "
                "prefix lives in the attention cache); turn one of them off"
            )

    def to_peft(self, model: Model, max_steps: int | None) -> Any:
        from peft import PrefixTuningConfig

        return PrefixTuningConfig(
            task_type=self.task_type,
            num_virtual_tokens=self.num_virtual_tokens,
            prefix_projection=self.prefix_projection,
        )
