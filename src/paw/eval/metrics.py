"""Metrics as lm-evaluation-harness defines them.

For a multiple-choice document with choice log-likelihoods ``ll_i`` and choice strings ``c_i``:
``acc = [argmax_i ll_i == gold]``, ``acc_norm = [argmax_i ll_i / len(c_i) == gold]`` (length in characters),
``acc_bytes`` divides by the UTF-8 byte length instead. Aggregates are means with ``stderr = s / sqrt(n)``
(``s`` the sample standard deviation, ddof 1), lm-eval's ``mean_stderr``. F1 is binary F1 of the positive
class (label 1), as lm-eval's ``f1`` aggregation (sklearn ``f1_score``) computes it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def argmax(values: Sequence[float]) -> int:
    """First index of the maximum (numpy's tie rule)."""
    best = 0
    for i, value in enumerate(values):
        if value > values[best]:
            best = i
    return best


def choice_predictions(lls: Sequence[float], choices: Sequence[str]) -> dict[str, int]:
    return {
        "acc": argmax(lls),
        "acc_norm": argmax([ll / float(len(c)) for ll, c in zip(lls, choices, strict=True)]),
        "acc_bytes": argmax([ll / float(len(c.encode("utf-8"))) for ll, c in zip(lls, choices, strict=True)]),
    }


def mean_stderr(values: Sequence[float]) -> float | None:
    n = len(values)
    if n < 2:
        return None
    mu = sum(values) / n
    return math.sqrt(sum((v - mu) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def binary_f1(golds: Sequence[int], preds: Sequence[int]) -> float:
    tp = sum(1 for g, p in zip(golds, preds, strict=True) if g == 1 and p == 1)
    fp = sum(1 for g, p in zip(golds, preds, strict=True) if g != 1 and p == 1)
    fn = sum(1 for g, p in zip(golds, preds, strict=True) if g == 1 and p != 1)
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def aggregate(per_example: list[dict[str, float]], metrics: Sequence[str]) -> dict[str, float | None]:
    """Mean and stderr of each per-example metric; ``f1`` from the stored gold/pred pairs."""
    out: dict[str, float | None] = {}
    for metric in metrics:
        if metric == "f1":
            out["f1"] = binary_f1(
                [int(e["gold"]) for e in per_example], [int(e["pred"]) for e in per_example]
            )
            out["f1_stderr"] = None
            continue
        values = [float(e[metric]) for e in per_example]
        out[metric] = sum(values) / len(values) if values else None
        out[f"{metric}_stderr"] = mean_stderr(values)
    return out
