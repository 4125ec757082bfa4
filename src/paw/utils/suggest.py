"""'Did you mean ...?' hints for unknown names."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when nothing is close."""
    choices = list(choices)
    matches = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in choices}
        matches = [
            lowered[m] for m in difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        ]
    if not matches:  # abbreviations and long forms: 'rank' -> 'r'
        matches = sorted((c for c in choices if name.startswith(c) or c.startswith(name)), key=len)[:1]
    return f" (did you mean '{matches[0]}'?)" if matches else ""
