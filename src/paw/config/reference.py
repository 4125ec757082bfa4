"""Render ``docs/configuration.md``: every config key with its type, default and description, from the pydantic
models. Generated, so it cannot drift (a test compares): ``python -m paw.config.reference > docs/configuration.md``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from paw.config.objectives import Reward
from paw.config.peft_methods import REGISTRY, PeftSection, section_class
from paw.config.pipeline_schema import PipelineConfig
from paw.config.schema import RunConfig
from paw.config.section import jsonable

HEADER = """\
# Configuration reference

Generated from `paw/config/schema.py` and `paw/config/pipeline_schema.py` by
`python -m paw.config.reference > docs/configuration.md`; do not edit by hand (a test checks it is current).

A config is one YAML file of sections. Unknown keys are errors with a "did you mean" hint. On top of the keys
below: `extends: base.yaml` (or a list) inherits from other files (relative to the file; `paw:<path>` names a
file inside the installed paw package, e.g. `paw:pipeline/quick_test.yaml`); `profiles: {name: {...}}` holds fragments merged
over the file by `--profile name`; `section.key=value` arguments on the command line override last (values are
read as YAML). `training` also takes any `transformers.TrainingArguments` field by its own name (checked against
the installed transformers), except the ones paw manages itself, which are refused with the paw key to use.
Relative data paths resolve against `paths.data_dir` when set, else the current directory; built-in datasets
(`paw-synth/<name>`) and models (`paw-tiny/<family>[-<variant>]`; `paw-shape/<name>[@<layers>]` once
`paw fetch-tokenizers` has run) work offline.
"""


def _type(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
    text = text or str(annotation)
    text = re.sub(r"typing\.|paw\.config\.\w+\.|<class '|'>", "", text)
    return text.replace("|", "\\|")


def _default(field: Any) -> str:
    if field.default is not PydanticUndefined:
        value = field.default
    elif field.default_factory is not None:
        value = field.default_factory()
    else:
        return "*required*"
    if isinstance(value, BaseModel):
        return "(section)"
    return f"`{json.dumps(jsonable(value))}`"


def _rows(model: type[BaseModel], prefix: str, skip: tuple[str, ...] = ()) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        annotation = field.annotation
        key = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _rows(annotation, f"{key}.")
            continue
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `{key}` | {_type(annotation)} | {_default(field)} | {description} |")
    return rows


def _section(title: str, intro: str, schema: type[BaseModel], names: list[str] | None = None) -> list[str]:
    lines = [f"## {title}", "", intro, ""]
    for name, field in schema.model_fields.items():
        if names is not None and name not in names:
            continue
        annotation = field.annotation
        lines += [f"### `{name}`", ""]
        if field.description:
            lines += [field.description, ""]
        lines += ["| key | type | default | description |", "|---|---|---|---|"]
        lines += _rows(annotation, f"{name}.")
        lines.append("")
        if annotation is PeftSection:
            lines += _method_tables(name)
    return lines


def _method_tables(name: str) -> list[str]:
    """One table per PEFT method: the options its section adds to ``method`` and ``task_type``."""
    by_class: dict[type[BaseModel], list[str]] = {}
    for method in REGISTRY:
        cls = section_class(method)
        same = next((c for c in by_class if c.model_fields.keys() == cls.model_fields.keys()), cls)
        by_class.setdefault(same, []).append(method)
    lines = []
    for cls, methods in by_class.items():
        shown = ", ".join(f"`{m}`" for m in methods)
        lines += [f"#### `{name}.method`: {shown}", ""]
        doc = (cls.__doc__ or "").strip().splitlines()
        lines += [doc[0], ""] if doc and cls.__doc__ != PeftSection.__doc__ else []
        rows = _rows(cls, f"{name}.", skip=tuple(PeftSection.model_fields))
        lines += ["| key | type | default | description |", "|---|---|---|---|", *rows, ""] if rows else []
    return lines


def render_reference() -> str:
    lines = [HEADER]
    lines += _section(
        "Run configs (`paw train`, `paw validate`)", "Sections of a training config.", RunConfig
    )
    lines += [
        "#### Each of `grpo.rewards`",
        "",
        "| key | type | default | description |",
        "|---|---|---|---|",
        *_rows(Reward, "grpo.rewards[]."),
        "",
    ]
    pipeline_only = [n for n in PipelineConfig.model_fields if n not in RunConfig.model_fields]
    lines += _section(
        "Pipeline configs (`paw pipeline`)",
        "A pipeline config has the run sections above except `model`, which is replaced by `source` and `target` "
        "(each a `model` section), plus the sections below.",
        PipelineConfig,
        pipeline_only,
    )
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(render_reference(), end="")
