"""Render ``configs/template.yaml``: every option with its default and description, from the pydantic models.

Generated, so it cannot drift from the schema (a test compares): ``python -m paw.config.template > configs/template.yaml``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from paw.config.schema import RunConfig
from paw.config.section import jsonable

HEADER = """\
# paw train configs/template.yaml model.name_or_path=paw-tiny/qwen2 data.train_file=train.jsonl
#
# Every paw config option with its default. Generated from paw/config/schema.py by
# `python -m paw.config.template`; do not edit by hand. `training` also accepts any
# transformers.TrainingArguments field by its own name (e.g. weight_decay, max_grad_norm, optim).
# Top level extras: `extends: base.yaml` (inherit) and `profiles: {name: {...}}` (pick with --profile).
"""
OTHER_METHODS = "the lora section; each other peft.method takes its own keys (docs/configuration.md)"
EXAMPLES = {
    ("model", "name_or_path"): "paw-tiny/qwen2",
    ("data", "train_file"): "train.jsonl",
}


def _value(value: Any) -> str:
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    value = jsonable(value)
    return json.dumps(value) if not isinstance(value, str) else value if value else '""'


def _section_type(field: Any) -> Any:
    """A section's class: its default's (the ``peft`` section of the default method), else its annotation."""
    if field.default_factory is not None:
        default = field.default_factory()
        if isinstance(default, BaseModel):
            return type(default)
    return field.annotation


def _lines(model: type[BaseModel], path: tuple[str, ...], indent: int) -> list[str]:
    lines = []
    pad = "  " * indent
    for name, field in model.model_fields.items():
        annotation = _section_type(field)
        description = field.description or ""
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            lines.append(f"{pad}{name}:  # {description}".rstrip())
            lines += _lines(annotation, (*path, name), indent + 1)
            continue
        if (*path, name) in EXAMPLES:
            default = EXAMPLES[(*path, name)]
        elif field.default is not PydanticUndefined:
            default = _value(field.default)
        elif field.default_factory is not None:
            default = _value(field.default_factory())
        else:
            default = "null"
        lines.append(f"{pad}{name}: {default}  # {description}")
    return lines


def render_template() -> str:
    body = []
    for name, field in RunConfig.model_fields.items():
        body.append(f"{name}:" + (f"  # {OTHER_METHODS}" if name == "peft" else ""))
        body += _lines(_section_type(field), (name,), 1)
    return HEADER + "\n".join(body) + "\n"


if __name__ == "__main__":
    print(render_template(), end="")
