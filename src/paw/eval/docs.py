"""Evaluation documents and the task interface.

A task turns one native row into a document:
- :class:`ChoiceDoc` (multiple choice, scored by log-likelihood): for most tasks one ``context`` and several
  ``choices`` scored as continuations ``target_delimiter + choice``; for "multiple input" tasks (WinoGrande)
  one context per choice and one shared ``continuation`` (lm-evaluation-harness's partial scoring);
- :class:`GenDoc` (generation, scored by answer extraction and exact match).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from paw.errors import PawError


@dataclass(frozen=True)
class ChoiceDoc:
    where: str
    context: str | list[str]
    choices: list[str]
    gold: int
    continuation: str | None = None  # multiple-input tasks: the text scored after each per-choice context
    fewshot_target: str | None = None  # what a few-shot example shows as its answer

    @property
    def multiple_input(self) -> bool:
        return isinstance(self.context, list)

    def __post_init__(self) -> None:
        """A document that cannot be scored as meant is refused where it was read, never scored wrongly."""
        options = len(self.context) if self.multiple_input else len(self.choices)
        if options < 2:
            raise PawError(f"{self.where}: {options} choice(s); a multiple-choice row needs at least 2")
        if not 0 <= self.gold < options:
            raise PawError(
                f"{self.where}: label {self.gold} is out of range for {options} choices (0-{options - 1})"
            )

    def requests(self, delimiter: str = " ") -> list[tuple[str, str]]:
        """(context, continuation) pairs, one per choice, exactly as lm-eval builds them."""
        if self.multiple_input:
            return [(ctx, f"{delimiter}{self.continuation}") for ctx in self.context]
        return [(self.context, f"{delimiter}{choice}") for choice in self.choices]


@dataclass(frozen=True)
class GenDoc:
    where: str
    prompt: str
    gold: str
    fewshot_target: str | None = None
    user: str | None = None  # instruction tasks: the user turn, for adapters trained with a chat template


@dataclass(frozen=True)
class HubSource:
    path: str
    name: str | None
    split: str
    fewshot_split: str | None = "train"  # where few-shot examples come from (lm-eval: the training split)


@dataclass(frozen=True)
class Task:
    """A benchmark task: where its data lives, how a row becomes a doc, and what it reports."""

    name: str
    kind: Literal["multiple_choice", "generation"]
    build: Callable[[dict[str, Any], str], ChoiceDoc | GenDoc]
    required: tuple[str, ...]
    metrics: tuple[str, ...]
    hub: HubSource | None = None
    description: str = ""
    generation: dict[str, Any] = field(default_factory=dict)  # until, max_new_tokens
    # generation tasks: (doc, model output) -> the sample's fields (predictions and the metrics' per-doc values)
    score: Callable[[GenDoc, str], dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        if self.kind == "generation" and self.score is None:
            raise ValueError(f"task {self.name}: a generation task needs a score(doc, output) function")

    def doc(self, row: dict[str, Any], where: str) -> ChoiceDoc | GenDoc:
        missing = [key for key in self.required if key not in row]
        if missing:
            raise PawError(
                f"{where}: missing field '{missing[0]}' (task {self.name} reads {', '.join(self.required)})"
            )
        try:
            doc = self.build(row, where)
        except PawError:
            raise
        except (KeyError, IndexError, ValueError, TypeError, AttributeError) as err:
            raise PawError(
                f"{where}: row does not fit task {self.name}: {type(err).__name__}: {err}"
            ) from None
        return doc


def label_index(labels: list[str], key: Any, where: str, texts: list[str] | None = None) -> int:
    """Index of answer ``key`` among choice ``labels`` (ARC/OBQA/CSQA style), or a PawError; the labels must be
    distinct and, when the choice ``texts`` are given, as many as they are (else label and text disagree)."""
    if texts is not None and len(texts) != len(labels):
        raise PawError(
            f"{where}: {len(texts)} choice texts but {len(labels)} labels {labels}: they must pair up"
        )
    if len(set(labels)) != len(labels):
        raise PawError(f"{where}: choice labels {labels} repeat; each choice needs its own label")
    key = str(key).strip()
    if key not in labels:
        raise PawError(f"{where}: answer '{key}' is not one of the choice labels {labels}")
    return labels.index(key)


def int_label(value: Any, where: str, names: dict[str, int] | None = None) -> int:
    """An integer label from an int, a digit string, a bool or a named string ('true'/'false')."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if names and text.lower() in names:
        return names[text.lower()]
    if text.lstrip("-").isdigit():
        return int(text)
    raise PawError(f"{where}: label {value!r} is not an integer")
