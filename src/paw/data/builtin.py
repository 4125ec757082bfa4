"""Built-in datasets ``paw-synth/<name>``: synthetic data generated on first use and cached, the data twin of
``paw-tiny/<family>``. Any place that takes a data file (``data.train_file``, ``eval.data_files``, ``--data-file``)
also takes one of these names, so configs that use them run anywhere, offline.

Names: ``instructions`` (the Alpaca instruction task), ``arc-train`` (ARC questions as prompt/completion pairs
in ARC's own prompt), ``sentiment`` (text/label rows for sequence classification), ``preferences`` (the
instruction task as chosen/rejected pairs, for DPO), ``kto`` (its answers labelled desirable or not),
``prompts`` (its prompts with the answer, for GRPO's rewards), and ``<schema>`` for each native multiple-choice
schema (``arc_easy``, ``piqa``, ...): test rows drawn with another seed than the training rows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from paw.data.synthetic import generate_alpaca, generate_sentiment_classification
from paw.data.synthetic_mc import GENERATORS, arc_prompt_completion, generate_mc, hellaswag_prompt_completion
from paw.data.synthetic_preference import generate_kto, generate_preference_pairs, generate_prompts
from paw.errors import PawError
from paw.utils.cache import cache_dir
from paw.utils.io import atomic_write_text
from paw.utils.suggest import did_you_mean

PREFIX = "paw-synth/"
# Bump when a generator changes, so files cached by an older paw are not reused.
VERSION = 1
TRAIN_SEED, TEST_SEED = 0, 1


def _catalog() -> dict[str, Callable[[], list[dict[str, Any]]]]:
    catalog: dict[str, Callable[[], list[dict[str, Any]]]] = {
        "instructions": lambda: generate_alpaca(1000, TRAIN_SEED),
        "arc-train": lambda: [arc_prompt_completion(r) for r in generate_mc("arc_easy", 1000, TRAIN_SEED)],
        "hellaswag-train": lambda: [
            hellaswag_prompt_completion(r) for r in generate_mc("hellaswag", 1000, TRAIN_SEED)
        ],
        "sentiment": lambda: generate_sentiment_classification(1000, TRAIN_SEED),
        "preferences": lambda: generate_preference_pairs(1000, TRAIN_SEED),
        "kto": lambda: generate_kto(1000, TRAIN_SEED),
        "prompts": lambda: generate_prompts(1000, TRAIN_SEED),
    }
    for schema in GENERATORS:
        catalog[schema] = lambda schema=schema: generate_mc(schema, 300, TEST_SEED)
    return catalog


def is_builtin(path: str | os.PathLike) -> bool:
    return str(path).startswith(PREFIX)


def names() -> list[str]:
    return [PREFIX + name for name in _catalog()]


def resolve_data_file(path: str | os.PathLike) -> Path:
    """A data file path as given, or the cached file of a built-in dataset (generated on first use)."""
    if not is_builtin(path):
        return Path(path)
    name = str(path)[len(PREFIX) :]
    catalog = _catalog()
    if name not in catalog:
        raise PawError(
            f"unknown built-in dataset '{path}'{did_you_mean(name, catalog)}; built-in: {', '.join(names())}"
        )
    target = cache_dir() / "synth" / f"v{VERSION}" / f"{name}.jsonl"
    if target.is_file():
        return target
    rows = catalog[name]()
    return atomic_write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
