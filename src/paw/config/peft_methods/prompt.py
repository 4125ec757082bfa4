"""Prompt tuning (arXiv 2104.08691) through peft's ``PromptTuningConfig``: ``num_virtual_tokens`` trained input
embeddings prepended to every sequence; initialised from the embeddings of ``prompt_init_text`` when given (the
paper's strongest init), else at random. Only the embedding layer's input changes, so it fits any architecture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from paw.config.peft_methods import METHOD_HELP, VirtualTokensSection

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


class PromptTuning(VirtualTokensSection):
    method: Literal["prompt"] = Field("prompt", description=METHOD_HELP)
    title: ClassVar[str] = "prompt tuning"

    prompt_init_text: str | None = Field(
        None, description="Initialise the virtual tokens from this text's embeddings (else random)."
    )

    def to_peft(self, model: Model, max_steps: int | None) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit

        name = getattr(getattr(model, "config", None), "_name_or_path", None)
        return PromptTuningConfig(
            task_type=self.task_type,
            num_virtual_tokens=self.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if self.prompt_init_text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=self.prompt_init_text,
            tokenizer_name_or_path=name if self.prompt_init_text else None,
        )
