"""A transfer method that exists only for the tests: ΔW_t = ΔW_s / 2 where shapes match (registered by the test
with one line, to show a method is one module plus one registry line)."""

from typing import Any

from paw.transfer.methods import SkipUnit

PREPARED = []


def prepare(store_s: Any, store_t: Any, options: Any) -> dict[str, Any]:
    PREPARED.append((store_s.dir, store_t.dir, options.method))
    return {"factor": 0.5}


def transfer_unit(A: Any, B: Any, bases: dict[str, Any]) -> tuple[Any, Any]:
    if (B.shape[0], A.shape[1]) != tuple(bases["target_shape"]):
        raise SkipUnit("halved needs equal shapes")
    return A.clone(), B * bases["factor"]
