"""Learning-rate schedules as multipliers of the base LR, one per optimizer step.

``lr_at(step)`` is the LR used by the update of step ``step`` (1-based), which is what paw logs and reports.
- constant / linear / cosine: linear warmup over ``warmup`` steps, then flat, linear decay to 0, or
  cosine decay ``0.5·(1 + cos(π·t))`` with ``t`` the fraction of post-warmup steps done;
- multi-stage: ``[{steps: 75, lr: 1e-4}, {steps: 50, lr: 1e-5}]`` holds each stage's LR for its steps
  (the commonsense recipe: steps 1–75 at 1e-4, steps 76–125 at 1e-5).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class StageSpec:
    steps: int
    lr: float


def multi_stage_lr(step: int, stages: Sequence[StageSpec]) -> float:
    """LR of 1-based ``step``; steps past the last stage keep the last stage's LR."""
    boundary = 0
    for stage in stages:
        boundary += stage.steps
        if step <= boundary:
            return stage.lr
    return stages[-1].lr


def named_lr_factor(step: int, kind: str, total: int, warmup: int) -> float:
    """Multiplier of the base LR at 1-based ``step`` for a named schedule."""
    if warmup and step <= warmup:
        return step / warmup
    if kind == "constant":
        return 1.0
    progress = (step - warmup - 1) / max(1, total - warmup)
    if kind == "linear":
        return max(0.0, 1.0 - progress)
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
    raise ValueError(f"unknown schedule '{kind}'")


def stage_switch_steps(stages: Sequence[StageSpec]) -> list[int]:
    """First step of every stage after the first (where the LR switches)."""
    switches, boundary = [], 0
    for stage in stages[:-1]:
        boundary += stage.steps
        switches.append(boundary + 1)
    return switches


def make_scheduler(
    optimizer, base_lr: float, kind: str, total: int, warmup: int, stages: Sequence[StageSpec] = ()
):
    """A ``LambdaLR``; torch calls the lambda with the number of updates done, so step = that + 1."""
    from torch.optim.lr_scheduler import LambdaLR

    if stages:
        return LambdaLR(optimizer, lambda done: multi_stage_lr(done + 1, stages) / base_lr)
    return LambdaLR(optimizer, lambda done: named_lr_factor(done + 1, kind, total, warmup))
