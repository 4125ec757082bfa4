"""A run's plan as a person reads it (dry-run and validate tables, report.md); imports nothing heavy."""

from __future__ import annotations

from typing import Any


def plan_text(key: str, value: Any) -> str:
    """A plan value as a person reads it: 65,536 not 65536, lists joined, a schedule as stages, no None."""
    if value is None:
        return "by epochs" if key == "max_steps" else "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list) and all(isinstance(v, dict) and {"steps", "lr"} <= set(v) for v in value):
        return " → ".join(f"{v['steps']:,} steps at lr {v['lr']:g}" for v in value)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)
