"""LoRA (arXiv 2106.09685), rsLoRA and DoRA through peft's ``LoraConfig``.

ΔW = (α/r)·B·A with A random and B zero at the start (α/√r with rsLoRA, arXiv 2312.03732); DoRA (arXiv
2402.09353) re-normalises W + ΔW column-wise and learns the magnitudes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from paw.config.peft_methods import METHOD_HELP, TargetedSection

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


class LoRA(TargetedSection):
    method: Literal["lora"] = Field("lora", description=METHOD_HELP)
    title: ClassVar[str] = "LoRA"

    r: int = Field(8, ge=1, description="LoRA rank.")
    alpha: float = Field(
        16, gt=0, description="LoRA alpha; the update is scaled by alpha/r (alpha/sqrt(r) with rslora)."
    )
    dropout: float = Field(0.0, ge=0, lt=1, description="Dropout on the LoRA input.")
    use_dora: bool = Field(
        False, description="DoRA: learn a magnitude vector on top of LoRA's direction update."
    )
    use_rslora: bool = Field(False, description="rsLoRA: scale by alpha/sqrt(r) instead of alpha/r.")
    bias: Literal["none", "all", "lora_only"] = Field("none", description="Which biases to train.")
    init_adapter: str | None = Field(
        None,
        description="Start from this LoRA adapter's weights (e.g. one made by paw transfer) instead of a fresh "
        "init; its rank and targets replace r/alpha/target_modules.",
    )

    def summary(self) -> str:
        return f"{self.method} r={self.r} alpha={self.alpha:g} targets={self.targets_text}"

    def to_peft(self, model: Model, max_steps: int | None) -> Any:
        from peft import LoraConfig

        return LoraConfig(
            task_type=self.task_type,
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            use_dora=self.use_dora or self.method == "dora",
            use_rslora=self.use_rslora,
            bias=self.bias,
            modules_to_save=self.modules_to_save or None,
        )


class DoRA(LoRA):
    """LoRA with weight decomposition: ``method: dora`` is ``method: lora`` with ``use_dora: true``."""

    method: Literal["dora"] = Field("dora", description=METHOD_HELP)  # type: ignore[assignment]
    title: ClassVar[str] = "DoRA"
