"""Optional ``refine`` stage: a short LoRA fine-tune on the target starting from the transferred adapter, always
run beside its control — the same budget (examples, steps, rank, LR, seed) from the standard initialisation —
so the report shows what the transfer adds over simply training that little (LoRASuite's small-data refit).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paw.errors import PawError


@dataclass(frozen=True)
class RefineOptions:
    data_file: str
    examples: int = 100
    steps: int = 50
    learning_rate: float = 3e-3
    val_ratio: float = 0.2
    seed: int = 0


def _config(target: str, init_adapter: str | None, r: int, options: RefineOptions, root: Path):
    from paw.config.loader import validate_dict

    return validate_dict(
        {
            "model": {"name_or_path": target},
            "peft": {"r": r, "alpha": r, "target_modules": "all-linear", "init_adapter": init_adapter},
            "data": {
                "train_file": str(Path(options.data_file).resolve()),
                "val_ratio": options.val_ratio,
                "max_samples": options.examples,
                "seed": options.seed,
            },
            "training": {
                "max_steps": options.steps,
                "learning_rate": options.learning_rate,
                "seed": options.seed,
                "logging_steps": max(1, options.steps // 5),
            },
            "tracking": {"backends": []},
            "experiment": {"root": str(root)},
        },
        "refine",
    )


def refine(target: str, adapter: Path, options: RefineOptions, root: Path) -> dict[str, Any]:
    """Train both runs; returns their final validation losses and experiment dirs."""
    from paw.train.recipe import run_training

    if not Path(options.data_file).is_file():
        raise PawError(f"--refine-data {options.data_file}: file not found")
    r = int(json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))["r"])
    results = {}
    for name, init in (("transferred_init", str(adapter)), ("standard_init", None)):
        result = run_training(
            _config(target, init, r, options, root), name=name, command="paw transfer --refine"
        )
        evals = result.report.get("evals") or [{}]
        results[name] = {
            "val_loss": evals[-1].get("eval_loss"),
            "experiment": str(result.experiment.dir),
            "adapter": str(result.experiment.final_model),
        }
    return {
        "examples": options.examples,
        "steps": options.steps,
        "learning_rate": options.learning_rate,
        **results,
    }
