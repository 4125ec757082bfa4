"""LoRA DPO throughput on one device: TRL's ``DPOTrainer`` with its defaults vs paw (``training.objective: dpo``).
Real (non-pad) tokens per second of chosen and rejected sequences; same model, pairs, LoRA, micro-batch, weight
dtype, precision and steps; each run in its own process.

    .venv/bin/python benchmarks/dpo_throughput.py --model paw-shape/qwen2.5-0.5b [--steps 4] [--batch 2] \
        [--precision fp32|bf16] [--max-length 512] [--runs 'paw;...'] [--json out.json]

Runs:
  (a) TRL ``DPOTrainer`` + ``peft_config`` as its documentation writes it: DPOConfig defaults (gradient
      checkpointing on, the reference = the model with the adapter disabled), only output, steps, batch, learning
      rate, max length and precision set (TRL's default bf16 autocast is set to ``--precision`` for both sides);
  (a') the same with ``gradient_checkpointing=False``;
  (b) paw, ``training.objective: dpo`` (paw's default: gradient checkpointing off);
  (b') paw with ``model.gradient_checkpointing: true`` (to compare with (a) at its memory).
Pairs: the Alpaca demo rows of LLaMA-Factory (``../shared/data/alpaca/alpaca_en_demo.json``: an instruction, its
answer as chosen and the next row's answer as rejected: real text of real lengths) when present, else paw's
synthetic pairs. Both sides read the pairs in file order (``train_sampling_strategy: sequential``) and tokenise
them with the same prompt (the Alpaca prompt) and EOS. Throughput is tokens / seconds after one warm-up step.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from train_throughput import TORCH_DTYPES, machine, print_table, report_child, run_child, warmup_clock

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "alpaca" / "alpaca_en_demo.json"
LORA = {"r": 16, "alpha": 32, "target_modules": "all-linear"}


def pairs_file(work: Path, source: Path = SHARED) -> Path:
    """Preference pairs in paw's alpaca pair form (instruction, input, chosen, rejected)."""
    from paw.data.synthetic import write_jsonl
    from paw.data.synthetic_preference import generate_preference_pairs

    if not source.is_file():
        return write_jsonl(generate_preference_pairs(1000, 0), work / "synthetic-pairs.jsonl")
    rows = json.loads(source.read_text())
    pairs = [
        {
            "instruction": r["instruction"],
            "input": r.get("input") or "",
            "chosen": r["output"],
            "rejected": nxt["output"],
        }
        for r, nxt in zip(rows, rows[1:] + rows[:1], strict=True)
        if r["output"].strip() != nxt["output"].strip()
    ]
    return write_jsonl(pairs, work / "alpaca-pairs.jsonl")


def run_paw(
    model: Path, pairs: Path, work: Path, args: argparse.Namespace, checkpointing: bool = False
) -> dict:
    from paw.config.loader import validate_dict
    from paw.train.recipe import run_training

    cfg = {
        "model": {"name_or_path": str(model), "dtype": args.weights, "gradient_checkpointing": checkpointing},
        "peft": LORA,
        "data": {"train_file": str(pairs), "max_length": args.max_length},
        "training": {
            "objective": "dpo",
            "max_steps": args.steps,
            "learning_rate": 5e-6,
            "per_device_train_batch_size": args.batch,
            "logging_steps": args.steps,
            "bf16": args.precision == "bf16",
            "train_sampling_strategy": "sequential",
        },
        "preference": {"beta": 0.1},
        "tracking": {"backends": []},
        "experiment": {"root": str(work / "exps")},
    }
    report = run_training(validate_dict(cfg, "bench"), name=f"paw-dpo-{checkpointing}").report
    # logged at step 1 and at the last step: the last record's rate covers steps 2..N (after the warm-up step);
    # the token count covers every step (TRL's row counts steps 2..N: the batches themselves are the same)
    return {"tokens_all_steps": report["tokens_seen"], "tokens_per_s": report["steps"][-1]["tokens_per_s"]}


def run_trl(
    model: Path, pairs: Path, work: Path, args: argparse.Namespace, checkpointing: bool = True
) -> dict:
    """DPOTrainer + LoraConfig on the same prompts and completions (text, as TRL's documentation feeds it)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from paw.data.formats import alpaca_prompt
    from paw.data.readers import read_rows

    tokenizer = AutoTokenizer.from_pretrained(model)
    rows = [r.row for r in read_rows(pairs)]
    dataset = Dataset.from_list(
        [
            {
                "prompt": alpaca_prompt(r["instruction"], r["input"]),
                "chosen": r["chosen"],
                "rejected": r["rejected"],
            }
            for r in rows
        ]
    )

    clock = warmup_clock()
    config = DPOConfig(
        output_dir=str(work / "trl"),
        max_steps=args.steps,
        per_device_train_batch_size=args.batch,
        learning_rate=5e-6,
        max_length=args.max_length,
        report_to="none",
        save_strategy="no",
        logging_steps=args.steps,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",  # counting only
        use_cpu=not torch.cuda.is_available(),
        bf16=args.precision == "bf16",
        gradient_checkpointing=checkpointing,
        train_sampling_strategy="sequential",
    )
    trainer = DPOTrainer(
        model=AutoModelForCausalLM.from_pretrained(model, dtype=TORCH_DTYPES[args.weights]),
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], target_modules=LORA["target_modules"]),
        callbacks=[clock],
    )
    trainer.train()
    return clock.result(trainer)


RUNS = {
    "TRL DPOTrainer defaults": lambda *a: run_trl(*a, checkpointing=True),
    "TRL, no grad. ckpt": lambda *a: run_trl(*a, checkpointing=False),
    "paw dpo": lambda *a: run_paw(*a, checkpointing=False),
    "paw dpo, grad. ckpt": lambda *a: run_paw(*a, checkpointing=True),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="paw-shape/qwen2.5-0.5b", help="any model paw resolves")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps (the first is not timed)")
    parser.add_argument("--batch", type=int, default=2, help="pairs per micro-batch")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--weights", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--runs", help="a subset of the runs, separated by semicolons (default: all)")
    parser.add_argument("--only", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from paw.utils.hf import quiet_hf

    quiet_hf()
    if args.only is not None:  # one run, in its own process
        work = Path(args.work)
        result = RUNS[args.only](Path(args.model_dir), next(work.glob("*pairs.jsonl")), work, args)
        report_child(result)
        return
    from paw.models.resolve import resolve_model

    model_dir = resolve_model(args.model).location
    config = json.loads((Path(model_dir) / "config.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="paw-dpo-throughput-"))
    pairs = pairs_file(work)
    results = {}
    for name in args.runs.split(";") if args.runs else RUNS:
        command = [sys.executable, __file__, "--only", name, "--work", str(work), "--model-dir", model_dir]
        command += [
            "--steps",
            str(args.steps),
            "--batch",
            str(args.batch),
            "--max-length",
            str(args.max_length),
        ]
        command += ["--precision", args.precision, "--weights", args.weights]
        results[name] = run_child(name, command)
    ok = {name: r for name, r in results.items() if "error" not in r}
    base = ok.get("TRL DPOTrainer defaults", {}).get("tokens_per_s")
    header = (
        f"machine: {machine()}; precision {args.precision}, {args.weights} weights; pairs: {pairs.name}, steps "
        f"{args.steps}, {args.batch} pairs per batch, max length {args.max_length}, model {args.model} (hidden "
        f"{config['hidden_size']} x {config['num_hidden_layers']} layers, vocabulary {config['vocab_size']}); "
        "each run in its own process"
    )
    print(header)
    print_table(results, base)
    if args.json:
        args.json.write_text(json.dumps({"header": header, "model": args.model, "runs": results}))
    if len(ok) < len(results):
        raise SystemExit(f"failed: {', '.join(n for n in results if n not in ok)}")


if __name__ == "__main__":
    main()
