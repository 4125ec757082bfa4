"""Exact-match scoring of greedy answers: the held-out accuracy of an instruction task (prompts built as in
training: Alpaca prompt or chat template; generation in ``paw.models.generate``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paw.data.formats import alpaca_messages, alpaca_prompt
from paw.models.generate import generate

if TYPE_CHECKING:
    from paw.utils.hf_types import Model, Tokenizer


@dataclass(frozen=True)
class Prediction:
    prompt: str
    prediction: str
    gold: str
    correct: bool


def build_prompt(row: dict[str, Any], tokenizer: Tokenizer, prompt_template: str = "alpaca") -> str:
    if prompt_template == "chat":
        messages = alpaca_messages(row, "row")[:1]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return alpaca_prompt(row["instruction"], row.get("input") or "")


def normalize(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".").split())


def exact_match(
    model: Model,
    tokenizer: Tokenizer,
    rows: list[dict[str, Any]],
    prompt_template: str = "alpaca",
    max_new_tokens: int = 8,
) -> tuple[float, list[Prediction]]:
    """Accuracy of greedy answers against ``output`` (case/whitespace/final period ignored)."""
    prompts = [build_prompt(row, tokenizer, prompt_template) for row in rows]
    texts = generate(model, tokenizer, prompts, max_new_tokens)
    predictions = [
        Prediction(p, t, row["output"], normalize(t) == normalize(row["output"]))
        for p, t, row in zip(prompts, texts, rows, strict=True)
    ]
    return sum(p.correct for p in predictions) / max(1, len(predictions)), predictions
