"""The base of every config section: unknown keys are errors, and a YAML boolean is never read as a number."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator


def _admits(annotation: Any, kinds: tuple[type, ...]) -> bool:
    if annotation in kinds or annotation is Any:
        return True
    return any(_admits(arg, kinds) for arg in typing.get_args(annotation))


class NoBoolNumbers(BaseModel):
    """A YAML ``true`` is not a number: pydantic would read it as 1 (``r: true`` → rank 1, ``lr: yes`` → 1.0)."""

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) and info.field_name in cls.model_fields:
            annotation = cls.model_fields[info.field_name].annotation
            if _admits(annotation, (int, float)) and not _admits(annotation, (bool,)):
                raise ValueError(f"expected a number, got the boolean {str(value).lower()}")
        return value


class Section(NoBoolNumbers):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def jsonable(value: Any) -> Any:
    """A default as plain data for the generated docs: sections (also inside a list) as their non-default keys."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_defaults=True)
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value
