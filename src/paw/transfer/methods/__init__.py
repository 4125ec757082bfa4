"""Transfer methods: name -> module holding ``transfer_unit`` (imported when used)."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from paw.errors import PawError
from paw.utils.suggest import did_you_mean

REGISTRY = {
    "direct": "paw.transfer.methods.direct",
    "project": "paw.transfer.methods.project",
    "align": "paw.transfer.methods.align",
}
METHODS = (*REGISTRY, "auto")


class SkipUnit(Exception):
    """A method cannot transfer this unit; the message is the reason put in the report."""


def get_method(name: str) -> Callable:
    if name not in REGISTRY:
        raise PawError(
            f"--method '{name}' is unknown{did_you_mean(name, METHODS)}; choose from {', '.join(METHODS)}"
        )
    return importlib.import_module(REGISTRY[name]).transfer_unit


def pick(name: str, same_shape: bool) -> str:
    """``auto``: direct where the shapes match, else project."""
    if name != "auto":
        return name
    return "direct" if same_shape else "project"
