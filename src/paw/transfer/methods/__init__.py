"""Transfer methods: name -> module holding ``transfer_unit`` and optional hooks (imported when used)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from paw.errors import PawError
from paw.utils.suggest import did_you_mean

# name -> module; adding a method is one module and one line here
REGISTRY = {
    "direct": "paw.transfer.methods.direct",
    "project": "paw.transfer.methods.project",
    "align": "paw.transfer.methods.align",
    "align-act": "paw.transfer.methods.align_act",
}
# align-fit fits the target's adapter as a whole (paw/transfer/fit.py), not unit by unit
FIT_METHOD = "align-fit"
METHODS = (*REGISTRY, FIT_METHOD, "auto")
CALIBRATED = ("align-act", FIT_METHOD)  # the methods that read --calibration-data


class SkipUnit(Exception):
    """A method cannot transfer this unit; the message is the reason put in the report."""


@dataclass(frozen=True)
class Method:
    """A transfer method: a module holding ``transfer_unit(A, B, bases) -> (A_t, B_t)`` (raise SkipUnit with the
    reason to skip a unit), and optionally ``prepare(store_s, store_t, options) -> dict`` (computed once from the
    two weight stores and the run's TransferOptions, passed to every unit in ``bases`` and ``context`` with the
    unit's ``source_unit`` and ``target_unit``) and ``frame(kind, U_s, V_s, context) -> (out, in)`` (the source
    bases as compared with the target's by the similarity gate; default: as they are)."""

    name: str
    transfer_unit: Callable[[Any, Any, dict[str, Any]], tuple[Any, Any]]
    prepare: Callable[[Any, Any, Any], dict[str, Any]]
    frame: Callable[[str, Any, Any, dict[str, Any]], tuple[Any, Any]]


def _nothing_to_prepare(store_s: Any, store_t: Any, options: Any) -> dict[str, Any]:
    return {}


def _same_frame(kind: str, U_s: Any, V_s: Any, context: dict[str, Any]) -> tuple[Any, Any]:
    return U_s, V_s


def load_method(name: str) -> Method:
    if name not in REGISTRY:
        raise PawError(
            f"--method '{name}' is unknown{did_you_mean(name, METHODS)}; choose from {', '.join(METHODS)}"
        )
    module = importlib.import_module(REGISTRY[name])
    return Method(
        name,
        module.transfer_unit,
        getattr(module, "prepare", _nothing_to_prepare),
        getattr(module, "frame", _same_frame),
    )


def pick(name: str, same_shape: bool) -> str:
    """``auto``: direct where the shapes match, else project."""
    if name != "auto":
        return name
    return "direct" if same_shape else "project"
