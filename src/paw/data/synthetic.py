"""Synthetic instruction data with rules a tiny model can learn, for tests, demos and smoke runs.

Three Alpaca-format sub-tasks, each answered by one word:
- ``category``: "Name the category of the word." apple -> fruit (a fixed table);
- ``antonym``: "Give the opposite of the word." hot -> cold;
- ``sentiment``: a review built from positive or negative adjectives -> positive / negative
  (new reviews are new combinations of known words, so held-out accuracy measures generalisation).
Everything is seeded: the same seed gives the same rows.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import yaml

SUBTASKS = ("category", "antonym", "sentiment")
CATEGORY_PROMPTS = ("Name the category of the word.", "Which group does this word belong to?")
ANTONYM_PROMPTS = ("Give the opposite of the word.", "What is the antonym of this word?")
SENTIMENT_PROMPTS = ("Is this review positive or negative?", "Classify the sentiment of the review.")


@cache
def vocab() -> dict[str, Any]:
    """The word tables in ``synthetic_vocab.yaml``."""
    return yaml.safe_load(Path(__file__).with_name("synthetic_vocab.yaml").read_text(encoding="utf-8"))


def _category(rng: random.Random) -> dict[str, str]:
    table = vocab()["categories"]
    group = rng.choice(sorted(table))
    return {"instruction": rng.choice(CATEGORY_PROMPTS), "input": rng.choice(table[group]), "output": group}


def _antonym(rng: random.Random) -> dict[str, str]:
    pairs = sorted(vocab()["antonyms"].items())
    word, opposite = rng.choice(pairs)
    if rng.random() < 0.5:
        word, opposite = opposite, word
    return {"instruction": rng.choice(ANTONYM_PROMPTS), "input": word, "output": opposite}


def _sentiment(rng: random.Random) -> dict[str, str]:
    table = vocab()
    label = rng.choice(("positive", "negative"))
    subjects = rng.sample(table["subjects"], 2)
    adjectives = rng.sample(table["sentiment"][label], 2)
    clauses = [
        f"{s} was {rng.choice(table['fillers'])} {a}" for s, a in zip(subjects, adjectives, strict=True)
    ]
    review = " and ".join(clauses).capitalize() + "."
    return {"instruction": rng.choice(SENTIMENT_PROMPTS), "input": review, "output": label}


_MAKERS = {"category": _category, "antonym": _antonym, "sentiment": _sentiment}


def generate_alpaca(n: int, seed: int = 0, subtasks: tuple[str, ...] = SUBTASKS) -> list[dict[str, str]]:
    """``n`` Alpaca rows (instruction/input/output), cycling through ``subtasks``; deterministic in ``seed``."""
    unknown = [t for t in subtasks if t not in _MAKERS]
    if unknown:
        raise ValueError(f"unknown synthetic subtask(s) {unknown}; choose from {list(_MAKERS)}")
    rng = random.Random(seed)
    return [_MAKERS[subtasks[i % len(subtasks)]](rng) for i in range(n)]


def write_jsonl(rows: list[dict[str, Any]], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


def corpus_lines() -> Iterator[str]:
    """Text that covers the synthetic tasks' words, used to train the tiny models' tokenizers."""
    table = vocab()
    for group, words in table["categories"].items():
        yield f"{group}: " + ", ".join(words)
    for word, opposite in table["antonyms"].items():
        yield f"The opposite of {word} is {opposite}, and the opposite of {opposite} is {word}."
    for label, words in table["sentiment"].items():
        yield f"{label} words: " + " ".join(words)
    yield " ".join(table["subjects"]) + " " + " ".join(table["fillers"])
    for row in generate_alpaca(300, seed=1234):
        yield " ".join(row.values())


def generate_sentiment_classification(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows ``{"text", "label"}`` (positive/negative): reviews built from the sentiment word tables, for
    sequence classification."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        row = _sentiment(rng)
        rows.append({"text": row["input"], "label": row["output"]})
    return rows
