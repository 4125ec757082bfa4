"""``paw demo``: the training story offline in well under a minute on a CPU.

Builds ``paw-tiny/qwen2``, writes the synthetic instruction task, measures held-out exact match of the base
model, trains a LoRA with a two-stage recipe (below; same shape as the commonsense recipe, with rates a random tiny
model learns from in seconds), and measures again. Everything lands in ``--workdir``.
"""

from __future__ import annotations

import time
from pathlib import Path

import yaml
from rich.console import Console
from rich.table import Table

DEMO_CONFIG = {
    "model": {"name_or_path": "paw-tiny/qwen2"},
    "peft": {"method": "lora", "r": 16, "alpha": 32, "target_modules": "all-linear"},
    "data": {"val_ratio": 0.1, "max_length": 128},
    "training": {
        "schedule": [{"steps": 300, "lr": 3e-3}, {"steps": 100, "lr": 3e-4}],
        "per_device_train_batch_size": 8,
        "save": {"start_step": 300, "every": 20, "keep_last": 2},
        "eval_steps": 200,
        "logging_steps": 50,
    },
}


def run_demo(workdir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.config.loader import load_config
    from paw.data.synthetic import generate_alpaca, write_jsonl
    from paw.eval.generation import exact_match
    from paw.models.load import quiet_hf
    from paw.models.resolve import resolve_model
    from paw.train.recipe import run_training

    console = Console(highlight=False)
    started = time.perf_counter()
    quiet_hf()
    workdir.mkdir(parents=True, exist_ok=True)
    train_file = write_jsonl(generate_alpaca(600, seed=0), workdir / "train.jsonl")
    heldout = generate_alpaca(120, seed=7)
    write_jsonl(heldout, workdir / "heldout.jsonl")
    config_path = workdir / "demo.yaml"
    data = {**DEMO_CONFIG, "data": {**DEMO_CONFIG["data"], "train_file": str(train_file)}}
    data["experiment"] = {"root": str(workdir / "experiments")}
    config_path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    console.print(f"[bold]paw demo[/] — data and config in {workdir}")

    model_dir = resolve_model("paw-tiny/qwen2").location
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    base_acc, _ = exact_match(AutoModelForCausalLM.from_pretrained(model_dir), tokenizer, heldout)

    result = run_training(load_config(config_path), config_stem="demo", command="paw demo")
    exp = result.experiment
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), exp.final_model)
    tuned_acc, predictions = exact_match(tuned, tokenizer, heldout)
    steps = result.report["steps"]
    evals = result.report["evals"]

    table = Table(title="held-out synthetic instruction task (120 questions, exact match)")
    for column in ("model", "accuracy", "val loss"):
        table.add_column(column)
    table.add_row("paw-tiny/qwen2 (base)", f"{base_acc:.1%}", "")
    table.add_row("+ LoRA (paw train)", f"{tuned_acc:.1%}", f"{evals[-1]['eval_loss']:.3f}" if evals else "")
    console.print(table)
    shown = [p for p in predictions if p.correct][:2] + [p for p in predictions if not p.correct][:2]
    for p in shown:
        console.print(f"  gold [bold]{p.gold}[/]  predicted [bold]{p.prediction.strip()!r}[/]")
    console.print(
        f"train loss {steps[0]['loss']:.3f} → {steps[-1]['loss']:.3f}; LR switched at step "
        f"{result.report['lr_switch_steps']}; checkpoints kept: {result.report['checkpoints_on_disk']}\n"
        f"experiment: {exp.dir} (report.md, plots/, results/, models/final_model)\n"
        f"done in {time.perf_counter() - started:.0f} s"
    )
