"""Honest statistics for the pipeline report: paired bootstrap over questions.

Every model in the study answers the same questions, so deltas are paired: resample question indices with
replacement (B times), recompute each mean on the resample, and take percentile intervals. The recovery ratio

    RR = (acc_transferred − acc_target_base) / (acc_target_lora − acc_target_base)

is reported only when the target LoRA's gain over the target base is significant (its interval excludes 0);
otherwise the denominator is noise and RR says nothing, so it is undefined with the reason. With several seeds,
a model's per-question score is the mean over seeds (so resampling stays paired by question).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

SEED = 20241122


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def stderr(values: Sequence[float]) -> float:
    """Standard error of the mean (sample standard deviation / √n), as lm-evaluation-harness reports it."""
    n = len(values)
    if n < 2:
        return 0.0
    mu = mean(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1) / n)


def _resamples(n: int, draws: int):
    import numpy as np

    return np.random.default_rng(SEED).integers(0, n, size=(draws, n))


def _percentiles(samples, confidence: float) -> tuple[float, float]:
    import numpy as np

    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(samples, [tail, 100 - tail])
    return float(low), float(high)


def paired_delta(after: Sequence[float], before: Sequence[float], draws: int, confidence: float) -> Interval:
    """mean(after) − mean(before) with a paired-bootstrap interval."""
    import numpy as np

    if len(after) != len(before):
        raise ValueError(f"paired scores differ in length: {len(after)} vs {len(before)}")
    diff = np.asarray(after, dtype=float) - np.asarray(before, dtype=float)
    boot = diff[_resamples(len(diff), draws)].mean(axis=1)
    return Interval(float(diff.mean()), *_percentiles(boot, confidence))


def recovery_ratio(
    base: Sequence[float],
    lora: Sequence[float],
    transferred: Sequence[float],
    draws: int,
    confidence: float,
) -> dict[str, Any]:
    """RR with a paired-bootstrap interval, or ``value: None`` and the reason when the LoRA gain is not significant."""
    import numpy as np

    gain = paired_delta(lora, base, draws, confidence)
    out: dict[str, Any] = {"lora_gain": gain.as_dict()}
    if gain.low <= 0:
        out.update(
            value=None,
            reason=f"undefined: the target LoRA's gain over the target base ({gain.value:+.1%}, "
            f"{confidence:.0%} CI {gain.low:+.1%} … {gain.high:+.1%}) is not significant, so the ratio's "
            "denominator is noise",
        )
        return out
    b, lo, tr = (np.asarray(x, dtype=float) for x in (base, lora, transferred))
    idx = _resamples(len(b), draws)
    num = tr[idx].mean(axis=1) - b[idx].mean(axis=1)
    den = lo[idx].mean(axis=1) - b[idx].mean(axis=1)
    ok = den > 0
    low, high = _percentiles(num[ok] / den[ok], confidence)
    value = float((tr.mean() - b.mean()) / (lo.mean() - b.mean()))
    out.update(value=round(value, 6), low=round(low, 6), high=round(high, 6), reason=None)
    return out
