"""``direct``: same module shapes (a base model and its instruct/upgraded version): copy ΔW = B·A as is."""

from __future__ import annotations

from typing import Any

from paw.transfer.methods import SkipUnit


def transfer_unit(A: Any, B: Any, bases: dict[str, Any]) -> tuple[Any, Any]:
    out_t, in_t = bases["target_shape"]
    if (B.shape[0], A.shape[1]) != (out_t, in_t):
        raise SkipUnit(
            f"direct needs equal shapes: adapter is {tuple((B.shape[0], A.shape[1]))}, target {(out_t, in_t)}"
        )
    return A.clone(), B.clone()
