"""Verifiable rewards for GRPO, as TRL calls a reward: ``f(prompts=..., completions=..., **row fields) -> list[float]``.

- ``exact``: the completion equals the row's answer, or one of them when the field is a list (case, surrounding
  space and a final period ignored);
- ``number``: the completion's final number (the one after ``####`` when there is one, else the last) equals the
  answer's (a GSM8K answer's ``#### n``, or a plain number); ``1,234`` and ``1234.0`` equal ``1234``;
- ``choice``: the letter A-J the completion states (``answer is B``, ``Answer: (B)``, ``(B)``, or a leading
  ``B.``/``B)``/``B:``, or ``B`` alone) equals the answer letter;
- ``regex``: 1 when the pattern is found in the completion (a format reward);
- ``function``: the user's own, by import path ``package.module:name``.

A completion is text, or (chat prompts) a list holding one assistant message; only its text is scored.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from paw.errors import PawError

if TYPE_CHECKING:
    from paw.config.objectives import Reward

NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")
# where a completion states its choice, tried in turn: "answer is B" / "Answer: (B)", "(B)", a leading "B." / "B)" / "B: " or "B" alone
LETTER_PATTERNS = (
    re.compile(r"answer\s*(?:is|:)?\s*\(?([A-J])\b", re.IGNORECASE),
    re.compile(r"\(([A-J])\)"),
    re.compile(r"^\s*([A-J])(?:[.):]|\s*$)"),
)


def completion_text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(str(m.get("content", "")) for m in completion if isinstance(m, dict))
    return str(completion)


def normalise(text: str) -> str:
    return " ".join(str(text).strip().rstrip(".").lower().split())


def final_number(text: str) -> Decimal | None:
    """The number after the last ``####`` (GSM8K's answer mark) if any, else the last number in ``text``."""
    text = str(text)
    if "####" in text:
        matches = NUMBER.findall(text.rsplit("####", 1)[1])[:1]
    else:
        matches = NUMBER.findall(text)[-1:]
    if not matches:
        return None
    try:
        return Decimal(matches[0].replace(",", ""))
    except InvalidOperation:
        return None


def stated_letter(text: str) -> str | None:
    """The choice letter a completion states (see ``LETTER_PATTERNS``), upper case; None when it states none."""
    for pattern in LETTER_PATTERNS:
        found = pattern.search(str(text))
        if found:
            return found.group(1).upper()
    return None


def _scored(check: Callable[[str, Any], bool], spec: Reward):
    field = spec.field

    def reward(prompts: list[Any], completions: list[Any], **row: Any) -> list[float]:
        if field not in row:
            fields = ", ".join(sorted(row))
            raise PawError(f"reward {spec.name}: the rows have no field '{field}' (fields: {fields})")
        return [float(check(completion_text(c), a)) for c, a in zip(completions, row[field], strict=True)]

    reward.__name__ = spec.name.replace(":", "_")  # TRL logs rewards/<__name__>/mean
    return reward


def _exact(text: str, answer: Any) -> bool:
    """Equal to the answer, or to one of them when the field lists several (aliases, a set of valid replies)."""
    answers = answer if isinstance(answer, list) else [answer]
    return normalise(text) in {normalise(a) for a in answers}


def _number(text: str, answer: Any) -> bool:
    expected = final_number(answer)
    return expected is not None and final_number(text) == expected


def _choice(text: str, answer: Any) -> bool:
    return stated_letter(text) == str(answer).strip().upper()


def _regex(pattern: str, name: str):
    compiled = re.compile(pattern, re.DOTALL)

    def reward(prompts: list[Any], completions: list[Any], **row: Any) -> list[float]:
        return [float(compiled.search(completion_text(c)) is not None) for c in completions]

    reward.__name__ = name
    return reward


def import_function(path: str) -> Callable[..., list[float]]:
    """``package.module:name`` → the callable (PawError when it cannot be imported or is not callable)."""
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PawError(f"grpo.rewards: cannot import '{module_name}' for reward '{path}': {err}") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise PawError(f"grpo.rewards: '{module_name}' has no function '{attribute}'")
    return function


CHECKS = {"exact": _exact, "number": _number, "choice": _choice}


def reward_function(spec: Reward) -> Callable[..., list[float]]:
    """The callable TRL's GRPOTrainer scores completions with; its ``__name__`` names it in the reports."""
    if spec.kind == "function":
        return import_function(spec.function or "")
    if spec.kind == "regex":
        return _regex(spec.pattern or "", "regex")
    return _scored(CHECKS[spec.kind], spec)


def fields_needed(specs: list[Reward]) -> list[str]:
    """Row fields the built-in rewards read."""
    return sorted({s.field for s in specs if s.kind in CHECKS})
