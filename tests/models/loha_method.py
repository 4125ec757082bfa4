"""A PEFT method that exists only in the tests: LoHa (arXiv 2108.06098, ΔW = (B₁A₁) ⊙ (B₂A₂), a Hadamard product
of two low-rank pairs), through peft's ``LoHaConfig``. Registered with one line, it proves a method is one module:
``monkeypatch.setitem(REGISTRY, "loha", "tests.models.loha_method:LoHa")``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from paw.config.peft_methods import METHOD_HELP, TargetedSection


class LoHa(TargetedSection):
    method: Literal["loha"] = Field("loha", description=METHOD_HELP)
    title: ClassVar[str] = "LoHa"

    r: int = Field(4, ge=1, description="Rank of each of the two factor pairs.")
    alpha: float = Field(4, gt=0, description="The update is scaled by alpha/r.")

    def summary(self) -> str:
        return f"loha r={self.r} alpha={self.alpha:g} targets={self.targets_text}"

    def to_peft(self, model: Any, max_steps: int | None) -> Any:
        from peft import LoHaConfig

        return LoHaConfig(
            task_type=self.task_type, r=self.r, alpha=self.alpha, target_modules=self.target_modules
        )
