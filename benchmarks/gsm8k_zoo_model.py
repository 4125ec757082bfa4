"""A model pretrained here that answers GSM8K in lm-eval's few-shot format and stops: the gsm8k generation benchmark
needs rows that end at different lengths (a random-weight stand-in never meets a stop sequence).

    .venv/bin/python benchmarks/gsm8k_zoo_model.py [--base paw-zoo/qwen2-m] [--steps 400] [--out DIR]

Trains a LoRA on ``--base`` (a zoo model, ``paw zoo build``) with ``paw train`` on GSM8K text laid out as lm-eval's
gsm8k prompt lays out its shots ("Question: …\\nAnswer: …\\n\\n", several per row, up to 1,024 tokens), then merges it
with ``paw merge`` into ``--out`` (default: ``benchmarks/results/models/<base>-gsm8k``, git-ignored; the training
experiment stays beside it; a finished run is neither retrained nor merged again). Rows: those of
../shared/data/native/original/gsm8k_test.jsonl after the first ``--skip`` (the benchmark scores the first 50 and
draws its shots from the next 400), so no scored row or shot is trained on.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GSM8K = ROOT.parent / "shared" / "data" / "native" / "original" / "gsm8k_test.jsonl"
PAW = [sys.executable, "-m", "paw"]


def text_rows(rows: list[dict], per_row: int) -> list[dict]:
    """``per_row`` consecutive question/answer pairs per training text, in lm-eval's gsm8k layout."""
    shots = [f"Question: {r['question']}\nAnswer: {r['answer']}" for r in rows]
    return [{"text": "\n\n".join(shots[i : i + per_row]) + "\n\n"} for i in range(0, len(shots), per_row)]


def train_and_merge(base: str, steps: int, data: dict, out: Path) -> Path:
    """A LoRA (r 64, all linear, 3e-3 cosine) on ``base`` trained by ``paw train`` on ``data`` (the config's data
    section), resumed if interrupted, then merged by ``paw merge`` into ``out``; the experiment stays beside it
    (``out.parent/experiments``). A finished training is not run again, and a merged model already in ``out`` is
    kept (``paw merge`` never overwrites one)."""
    experiments = out.parent / "experiments"
    run = experiments / out.name
    adapter = run / "models" / "final_model"
    if not adapter.is_dir():  # train, or resume an interrupted training (same files, same paths)
        config = {
            "model": {"name_or_path": base, "dtype": "fp32"},
            "peft": {"method": "lora", "r": 64, "alpha": 64, "dropout": 0.0, "target_modules": "all-linear"},
            "data": data,
            "training": {
                "max_steps": steps,
                "learning_rate": 3.0e-3,
                "schedule": "cosine",
                "warmup_steps": 20,
                "per_device_train_batch_size": 8,
                "logging_steps": 20,
                "seed": 0,
            },
            "experiment": {"root": str(experiments)},
        }
        config_file = experiments / f"{out.name}.yaml"
        config_file.write_text(json.dumps(config))
        resume = ["--resume", str(run)] if run.is_dir() else ["--name", out.name]
        subprocess.run([*PAW, "train", str(config_file), *resume], check=True)
    if not (out / "config.json").is_file():
        subprocess.run([*PAW, "merge", "--adapter", str(adapter), "--output", str(out)], check=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="paw-zoo/qwen2-m")
    parser.add_argument(
        "--skip", type=int, default=450, help="leading rows never trained on (scored rows, shots)"
    )
    parser.add_argument("--per-row", type=int, default=4, help="question/answer pairs per training text")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or ROOT / "benchmarks" / "results" / "models" / f"{args.base.split('/')[-1]}-gsm8k"
    rows = [json.loads(line) for line in GSM8K.read_text(encoding="utf-8").splitlines() if line.strip()]
    data = out.parent / "experiments" / f"{out.name}.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    data.write_text("".join(json.dumps(r) + "\n" for r in text_rows(rows[args.skip :], args.per_row)))
    text = {"train_file": str(data), "format": "text", "max_length": 1024, "val_ratio": 0.0}
    train_and_merge(args.base, args.steps, text, out)
    print(f"model: {out}")


if __name__ == "__main__":
    main()
