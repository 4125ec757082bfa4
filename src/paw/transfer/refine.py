"""Optional ``refine`` stage: a short LoRA fine-tune on the target starting from the transferred adapter, always
run beside its control — the same budget (examples, steps, rank, alpha, target modules, LR, seed) from the
standard initialisation — so the report shows what the transfer adds over simply training that little
(LoRASuite's small-data refit). Modules the transfer did not write (layers a shallower source has no match for,
refused units) start from the standard initialisation in the refined run too, so both runs train the same
parameters.
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


def _config(target: str, init_adapter: str | None, r: int, alpha: float, options: RefineOptions, root: Path):
    from paw.config.loader import validate_dict

    return validate_dict(
        {
            "model": {"name_or_path": target},
            "peft": {"r": r, "alpha": alpha, "target_modules": "all-linear", "init_adapter": init_adapter},
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
    spec = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    r, alpha = int(spec["r"]), float(spec.get("lora_alpha") or spec["r"])
    completed = complete_adapter(target, adapter, r, alpha, options.seed, root / ".transferred_init")
    results = {}
    for name, init in (("transferred_init", str(completed)), ("standard_init", None)):
        result = run_training(
            _config(target, init, r, alpha, options, root), name=name, command="paw transfer --refine"
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


def complete_adapter(target: str, adapter: Path, r: int, alpha: float, seed: int, out: Path) -> Path:
    """``adapter`` widened to every linear module of ``target``: the standard LoRA initialisation (seeded; B = 0, so
    the added modules change nothing at the start), overwritten by the transferred weights where it has them."""
    import warnings

    import torch
    from peft import LoraConfig, get_peft_model, set_peft_model_state_dict
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    from paw.models.resolve import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model(target).location, dtype=torch.float32)
    torch.manual_seed(seed)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM")
    widened = get_peft_model(model, config)
    with warnings.catch_warnings():  # the modules it lacks are meant to stay at the standard init
        warnings.filterwarnings("ignore", message="Found missing adapter keys")
        found = set_peft_model_state_dict(widened, load_file(str(adapter / "adapter_model.safetensors")))
    if found.unexpected_keys:
        raise PawError(f"{adapter}: modules the target {target} does not have: {found.unexpected_keys[:3]}")
    widened.save_pretrained(str(out))
    return out
