"""Regenerate ``training_args_fields.json``: the names and plain types of ``transformers.TrainingArguments``.

paw validates ``training:`` pass-through keys against this table so that ``paw validate`` never imports
transformers/torch. ``tests/config/test_training_fields.py`` fails when the installed transformers differs.
Run: ``python -m paw.config.gen_training_fields``.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

TABLE = Path(__file__).with_name("training_args_fields.json")


def _kind(annotation: object) -> str:
    """Reduce a dataclass annotation to one of bool/int/float/str/any (``Optional`` is unwrapped)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    candidates = args or [annotation]
    kinds = {c.__name__ if isinstance(c, type) else str(c) for c in candidates}
    if len(kinds) == 1 and (kind := next(iter(kinds))) in ("bool", "int", "float", "str"):
        return kind
    return "any"


def current_fields() -> dict[str, str]:
    from transformers import TrainingArguments

    hints = typing.get_type_hints(TrainingArguments)
    return {
        f.name: _kind(hints.get(f.name, f.type))
        for f in dataclasses.fields(TrainingArguments)
        if f.init and not f.name.startswith("_")
    }


def main() -> None:
    import transformers

    table = {"transformers_version": transformers.__version__, "fields": current_fields()}
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {TABLE} ({len(table['fields'])} fields)")


if __name__ == "__main__":
    main()
