"""The sections of the training objectives beyond SFT: ``preference`` (DPO, KTO) and ``grpo``.

Each is read only when ``training.objective`` names an objective that uses it; setting one for another objective
is an error (``RunConfig`` checks), so a forgotten ``training.objective: dpo`` never trains SFT on the side.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from paw.config.section import Section

OBJECTIVES = ("sft", "dpo", "kto", "orpo", "simpo", "grpo")
OBJECTIVE_HELP = (
    "What the adapter is trained for: sft (supervised fine-tuning; with peft.task_type SEQ_CLS, a classifier), "
    "dpo (preference pairs prompt/chosen/rejected, DPO and its variants by preference.loss_type), kto (unpaired "
    "completions labelled desirable or not), orpo and simpo (pairs, no reference model; TRL's experimental "
    "trainers), grpo (prompts and verifiable rewards, completions sampled during "
    "training). Each runs through TRL's trainer of that name."
)
SECTION_OF = {
    "dpo": "preference",
    "kto": "preference",
    "orpo": "preference",
    "simpo": "preference",
    "grpo": "grpo",
}

DPO_LOSSES = (
    "sigmoid",
    "hinge",
    "ipo",
    "robust",
    "exo_pair",
    "nca_pair",
    "bco_pair",
    "sppo_hard",
    "apo_zero",
    "apo_down",
    "aot",
    "aot_unpaired",
    "discopop",
    "sigmoid_norm",
)
KTO_LOSSES = ("kto", "apo_zero_unpaired")


class PreferenceConfig(Section):
    """Preference tuning (``training.objective: dpo``, ``kto``, ``orpo``, ``simpo``); the reference model (DPO,
    KTO) is the base model without the adapter (or, with ``peft.init_adapter``, the adapter as it started), never a
    second copy of the weights."""

    beta: float = Field(
        0.1,
        gt=0,
        description="dpo/kto: how far the policy may move from the reference (higher keeps it closer); orpo: the "
        "weight λ of the odds-ratio term; simpo: the reward scale (the paper uses 2.0-2.5).",
    )
    loss_type: str | None = Field(
        None,
        description="dpo: sigmoid (DPO, the default), ipo, hinge (SLiC), robust, exo_pair, nca_pair, bco_pair, "
        "sppo_hard, apo_zero, apo_down, aot, aot_unpaired, discopop, sigmoid_norm; kto: kto (the default) or "
        "apo_zero_unpaired. TRL's loss of that name.",
    )
    label_smoothing: float = Field(
        0.0,
        ge=0,
        lt=0.5,
        description="dpo robust/exo_pair: the probability that a preference label is flipped.",
    )
    rpo_alpha: float | None = Field(
        None,
        ge=0,
        description="dpo: add this weight × the chosen completion's NLL (RPO; 1.0 in the RPO paper). Unset: none.",
    )
    desirable_weight: float = Field(1.0, gt=0, description="kto: weight of the desirable completions' loss.")
    undesirable_weight: float = Field(
        1.0, gt=0, description="kto: weight of the undesirable completions' loss."
    )
    simpo_gamma: float = Field(0.5, ge=0, description="simpo: the target reward margin γ.")

    def check_for(self, objective: str) -> None:
        """Refuse (ValueError) a loss that is not the objective's."""
        if objective == "dpo":
            self.dpo_loss()
        elif objective == "kto":
            self.kto_loss()
        elif self.loss_type is not None:
            raise ValueError(f"preference.loss_type: {objective} has one loss; unset it")

    def dpo_loss(self) -> list[str]:
        """TRL's ``loss_type`` list for DPO (RPO adds TRL's 'sft' term with weight ``rpo_alpha``)."""
        loss = self.loss_type or "sigmoid"
        if loss not in DPO_LOSSES:
            raise ValueError(
                f"preference.loss_type '{loss}' is not a DPO loss; choose from {', '.join(DPO_LOSSES)}"
            )
        return [loss, "sft"] if self.rpo_alpha else [loss]

    def kto_loss(self) -> str:
        loss = self.loss_type or "kto"
        if loss not in KTO_LOSSES:
            raise ValueError(
                f"preference.loss_type '{loss}' is not a KTO loss; choose from {', '.join(KTO_LOSSES)}"
            )
        return loss


class Reward(Section):
    """One verifiable reward, scored on each sampled completion."""

    kind: Literal["exact", "number", "choice", "regex", "function"] = Field(
        description="exact: the completion equals the row's `field`, or one of them when it is a list (case and surrounding space ignored); "
        "number: the final number of the completion (after '####' when present) equals the row's `field`'s "
        "(GSM8K's '#### n'); choice: the letter A-J the completion states ('answer is B', '(B)', a leading 'B') equals the row's `field`; "
        "regex: 1 when `pattern` matches the completion (a format reward); function: `function` "
        "('package.module:name', importable from the working directory) called as TRL calls a reward: "
        "f(prompts=..., completions=..., **row fields) -> list of floats."
    )
    field: str = Field("answer", description="exact/number/choice: the row field holding the right answer.")
    pattern: str | None = Field(None, description="regex: the pattern (Python re, searched, DOTALL).")
    function: str | None = Field(None, description="function: 'package.module:name' of the reward function.")
    weight: float = Field(1.0, description="This reward's weight in the total.")

    @model_validator(mode="after")
    def _has_what_it_needs(self) -> Reward:
        if self.kind == "regex" and not self.pattern:
            raise ValueError("a regex reward needs `pattern`")
        if self.kind == "function" and not (self.function and ":" in self.function):
            raise ValueError("a function reward needs `function: package.module:name`")
        if self.kind == "regex":
            import re

            try:
                re.compile(self.pattern or "")
            except re.error as err:
                raise ValueError(
                    f"pattern {self.pattern!r} is not a valid regular expression ({err})"
                ) from None
        return self

    @property
    def name(self) -> str:
        """How reports name it: ``number:answer``, ``regex``, ``function:my_rewards:score``."""
        if self.kind == "function":
            return f"function:{self.function}"
        return self.kind if self.kind == "regex" else f"{self.kind}:{self.field}"


class GrpoConfig(Section):
    """GRPO (``training.objective: grpo``): completions are sampled for each prompt, scored by the rewards, and
    each is pushed up or down by how it did against the others of its group."""

    rewards: list[Reward] = Field(
        default_factory=lambda: [Reward(kind="exact")],
        description="The rewards, summed with their weights: [{kind: number, field: answer}, {kind: regex, "
        "pattern: '^\\\\d+$', weight: 0.2}, ...].",
    )
    num_generations: int = Field(
        4, ge=2, description="Completions sampled per prompt (the group its advantages are relative to)."
    )
    max_completion_length: int = Field(64, ge=1, description="Tokens sampled per completion at most.")
    temperature: float = Field(1.0, gt=0, description="Sampling temperature of the completions.")
    beta: float = Field(
        0.04,
        ge=0,
        description="Weight of the KL to the reference (the base without the adapter); 0 drops the reference "
        "forward and reports no KL.",
    )
    loss_type: Literal["grpo", "dapo", "dr_grpo", "bnpo"] = Field(
        "dapo", description="How token losses are averaged (TRL's loss_type; dapo is TRL's default)."
    )

    @model_validator(mode="after")
    def _rewards_given(self) -> GrpoConfig:
        if not self.rewards:
            raise ValueError("rewards: give at least one reward")
        names = [r.name for r in self.rewards]
        if len(set(names)) != len(names):
            raise ValueError(f"rewards: the same reward is listed twice ({names})")
        return self
