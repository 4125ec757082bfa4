"""Synthetic preference, KTO and GRPO rows built on the synthetic instruction task (``paw.data.synthetic``), so a
tiny model has a preference it can learn: the chosen completion is the task's answer; the rejected one is, in
alternate rows, a wrong answer of the same kind (another category, another word than the opposite, the other
sentiment: learnt only with the task itself, slowly by a random tiny model) or an evasive reply (the helpfulness
preference of real preference sets: learnt in a few dozen steps). Seeded."""

from __future__ import annotations

import random
from typing import Any

from paw.data.synthetic import SUBTASKS, generate_alpaca, vocab


def wrong_answer(row: dict[str, str], rng: random.Random) -> str:
    """A wrong answer of the same kind as ``row``'s."""
    table, right = vocab(), row["output"]
    if right in table["categories"]:
        return rng.choice(sorted(set(table["categories"]) - {right}))
    if right in ("positive", "negative"):
        return "negative" if right == "positive" else "positive"
    words = sorted({w for pair in table["antonyms"].items() for w in pair} - {right})
    return rng.choice(words)


EVASIVE = (
    "I am not sure about that.",
    "I cannot answer that question.",
    "That is hard to say.",
    "Please ask someone else.",
)


def rejected_answer(row: dict[str, str], index: int, rng: random.Random) -> str:
    """Row ``index``'s rejected completion: a wrong answer (even rows) or an evasive reply (odd rows)."""
    return wrong_answer(row, rng) if index % 2 == 0 else rng.choice(EVASIVE)


def generate_preference_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` rows ``{instruction, input, chosen, rejected}``."""
    rng = random.Random(seed + 7919)
    return [
        {
            "instruction": r["instruction"],
            "input": r["input"],
            "chosen": r["output"],
            "rejected": rejected_answer(r, i, rng),
        }
        for i, r in enumerate(generate_alpaca(n, seed))
    ]


def generate_kto(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows ``{instruction, input, completion, label}``: half right answers (true), half the pairs' rejected
    completions (false)."""
    rng = random.Random(seed + 7919)
    rows = []
    for i, r in enumerate(generate_alpaca(n, seed)):
        good = i % 2 == 0
        completion = r["output"] if good else rejected_answer(r, i // 2, rng)
        rows.append(
            {"instruction": r["instruction"], "input": r["input"], "completion": completion, "label": good}
        )
    return rows


def answers_of_kind(answer: str) -> list[str]:
    """Every answer of the same kind as ``answer``: the category names, the two sentiments, or the antonym words."""
    table = vocab()
    if answer in table["categories"]:
        return sorted(table["categories"])
    if answer in ("positive", "negative"):
        return ["negative", "positive"]
    return sorted({w for pair in table["antonyms"].items() for w in pair})


def generate_prompts(n: int, seed: int = 0, subtasks: tuple[str, ...] = SUBTASKS) -> list[dict[str, Any]]:
    """``n`` GRPO rows ``{instruction, input, answer, valid_answers}``: an ``exact`` reward on ``answer`` scores
    the right answer; on ``valid_answers`` (every answer of the asked kind) it scores answering in kind, which a
    briefly fine-tuned tiny model learns within a few dozen GRPO steps."""
    return [
        {
            "instruction": r["instruction"],
            "input": r["input"],
            "answer": r["output"],
            "valid_answers": answers_of_kind(r["output"]),
        }
        for r in generate_alpaca(n, seed, subtasks)
    ]
