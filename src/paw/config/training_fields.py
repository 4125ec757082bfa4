"""Check ``training:`` pass-through keys against ``transformers.TrainingArguments`` without importing it.

The table ``training_args_fields.json`` is generated from the installed transformers by
``python -m paw.config.gen_training_fields``; a test keeps it in step.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from paw.utils.suggest import did_you_mean

# Keys paw sets itself from the experiment layout or its own options; a user setting them would fight paw.
MANAGED = {
    "output_dir": "checkpoints go to <experiment>/checkpoints",
    "logging_dir": "TensorBoard events go to <experiment>/tensorboard",
    "report_to": "use tracking.backends",
    "save_strategy": "use training.save (start_step, every, keep_last)",
    "save_steps": "use training.save.every",
    "save_total_limit": "use training.save.keep_last",
    "lr_scheduler_type": "use training.schedule",
    "warmup_ratio": "use training.warmup_steps",
    "resume_from_checkpoint": "use 'paw train --resume'",
    "disable_tqdm": "paw draws its own progress output",
    "eval_strategy": "use training.eval_steps",
    "push_to_hub": "paw never uploads; push the final adapter yourself",
    "hub_token": "tokens are read from the environment and never stored in configs",
}
# Other training keys paw understands and reads through its own field, with the same name as TrainingArguments.
_PY_TYPES = {"bool": (bool,), "int": (int,), "float": (int, float), "str": (str,)}


@cache
def training_fields() -> dict[str, str]:
    table = json.loads(Path(__file__).with_name("training_args_fields.json").read_text(encoding="utf-8"))
    return table["fields"]


def check_passthrough(extra: dict[str, Any], paw_keys: Iterable[str] = ()) -> None:
    """Raise ``ValueError("[key] reason")`` for a key that is not a TrainingArguments field, is managed by paw, or
    has a wrong type; ``paw_keys`` (paw's own training options) are offered in the "did you mean" hint too."""
    fields = training_fields()
    for key, value in extra.items():
        if key in MANAGED:
            raise ValueError(f"[{key}] is set by paw: {MANAGED[key]}")
        if key not in fields:
            known = list(paw_keys) + list(fields)
            raise ValueError(
                f"[{key}] unknown key{did_you_mean(key, known)}: not a paw training option "
                "nor a transformers.TrainingArguments field"
            )
        kind = fields[key]
        if kind in _PY_TYPES and value is not None:
            ok = isinstance(value, _PY_TYPES[kind]) and not (kind != "bool" and isinstance(value, bool))
            if not ok:
                raise ValueError(f"[{key}] must be {kind}, got {type(value).__name__} {value!r}")
