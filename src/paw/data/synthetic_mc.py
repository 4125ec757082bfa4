"""Synthetic multiple-choice data in each benchmark's native schema, built on one learnable rule: which word
belongs to a category (the category table of ``paw/data/synthetic_vocab.yaml``). An untrained model is near
chance; a model that learned the table scores well above it. Also the same questions as Alpaca rows, to train on.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from paw.data.synthetic import vocab

LETTERS = "ABCDE"


def _pick(rng: random.Random, k: int) -> tuple[str, list[str], int, list[str]]:
    """A category, k candidate words (one from it, the rest from other categories), the gold index, their groups."""
    table = vocab()["categories"]
    groups = rng.sample(sorted(table), k)
    words = [rng.choice(table[g]) for g in groups]
    order = list(range(k))
    rng.shuffle(order)
    return groups[0], [words[i] for i in order], order.index(0), [groups[i] for i in order]


def _arc(rng: random.Random, i: int) -> dict[str, Any]:
    category, words, gold, _ = _pick(rng, 4)
    return {
        "id": f"syn-{i}",
        "question": f"Which of these is a kind of {category}?",
        "choices": {"text": words, "label": list(LETTERS[:4])},
        "answerKey": LETTERS[gold],
    }


def _openbookqa(rng: random.Random, i: int) -> dict[str, Any]:
    row = _arc(rng, i)
    return {
        "id": row["id"],
        "question_stem": row["question"],
        "choices": row["choices"],
        "answerKey": row["answerKey"],
    }


def _commonsense_qa(rng: random.Random, i: int) -> dict[str, Any]:
    category, words, gold, _ = _pick(rng, 5)
    return {
        "id": f"syn-{i}",
        "question": f"Which of these is a kind of {category}?",
        "choices": {"text": words, "label": list(LETTERS)},
        "answerKey": LETTERS[gold],
    }


def _piqa(rng: random.Random, i: int) -> dict[str, Any]:
    category, words, gold, groups = _pick(rng, 2)
    word = words[gold]
    wrong = groups[1 - gold]
    sols = [f"Say it is a kind of {category}.", f"Say it is a kind of {wrong}."]
    label = rng.randrange(2)
    if label == 1:
        sols.reverse()
    return {"goal": f"How do you describe a {word}?", "sol1": sols[0], "sol2": sols[1], "label": label}


def _hellaswag(rng: random.Random, i: int) -> dict[str, Any]:
    category, words, gold, groups = _pick(rng, 4)
    word = words[gold]
    endings = [f"say that it is a {g}." for g in groups]
    return {
        "ind": i,
        "activity_label": "Naming things",
        "ctx_a": f"The teacher holds up a {word}.",
        "ctx_b": "the children",
        "endings": endings,
        "label": groups.index(category),
    }


def _winogrande(rng: random.Random, i: int) -> dict[str, Any]:
    category, words, gold, groups = _pick(rng, 2)
    word = words[gold]
    answer = groups.index(category) + 1
    return {
        "sentence": f"The {word} is a kind of _ and belongs with the others.",
        "option1": groups[0],
        "option2": groups[1],
        "answer": str(answer),
    }


def _boolq(rng: random.Random, i: int) -> dict[str, Any]:
    category, words, gold, groups = _pick(rng, 2)
    word = words[gold]
    asked = rng.choice(groups)
    return {
        "passage": f"People sort words into groups such as {groups[0]} and {groups[1]}.",
        "question": f"is a {word} a kind of {asked}",
        "label": int(asked == category),
    }


def _alpaca(rng: random.Random, i: int) -> dict[str, Any]:
    category, words, gold, _ = _pick(rng, 4)
    return {
        "instruction": f"Which of these is a kind of {category}?",
        "input": ", ".join(words),
        "output": words[gold],
    }


GENERATORS: dict[str, Callable[[random.Random, int], dict[str, Any]]] = {
    "arc_easy": _arc,
    "arc_challenge": _arc,
    "openbookqa": _openbookqa,
    "commonsense_qa": _commonsense_qa,
    "piqa": _piqa,
    "hellaswag": _hellaswag,
    "winogrande": _winogrande,
    "boolq": _boolq,
    "alpaca_mc": _alpaca,
}


def generate_mc(schema: str, n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` rows of ``schema`` (a task name above); deterministic in ``seed``."""
    if schema not in GENERATORS:
        raise ValueError(f"unknown synthetic schema '{schema}'; choose from {', '.join(GENERATORS)}")
    rng = random.Random(seed)
    return [GENERATORS[schema](rng, i) for i in range(n)]


def arc_prompt_completion(row: dict[str, Any]) -> dict[str, str]:
    """An ARC row as a training pair in the benchmark's own prompt (lm-evaluation-harness's ``arc_easy``):
    ``Question: {question}\\nAnswer:`` → `` {gold choice}``, so a LoRA trained on it is scored in the format it learned.
    """
    gold = row["choices"]["label"].index(row["answerKey"])
    return {
        "prompt": f"Question: {row['question']}\nAnswer:",
        "completion": f" {row['choices']['text'][gold]}",
    }


def hellaswag_prompt_completion(row: dict[str, Any]) -> dict[str, str]:
    """A HellaSwag row as a training pair in lm-evaluation-harness's ``hellaswag`` prompt:
    ``{activity_label}: {ctx_a} {Ctx_b}`` → `` {gold ending}``. Unlike ARC's question ("a kind of fruit?": many
    right words), each context has one right ending (the word's category), so a model's greedy answer is the
    answer — what ``paw transfer --refine-labels source`` trains the target on."""
    context = f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}"
    return {"prompt": context, "completion": f" {row['endings'][int(row['label'])]}"}
