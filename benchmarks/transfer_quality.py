"""Transfer quality on source/target pairs whose relation is known, offline, on tiny models.

    .venv/bin/python benchmarks/transfer_quality.py [--steps 300] [--boot 1000]

Task: the synthetic category question ("Name the category of the word." apple -> fruit), Alpaca prompt, scored
as multiple choice over four category names by log-likelihood (chance 25%); LoRAs train on the category rows. A LoRA is trained on the source base and transferred; the target also
gets its own LoRA with the same recipe (the ceiling). Pairs:
  (a) upgrade: the target is the source fully fine-tuned further on other data (antonym/sentiment text);
  (b) grown: the target is the source made twice as deep (each layer followed by a copy whose output
      projections are zero, so the function is unchanged), then fine-tuned like (a); depth map proportional;
  (c) rotated: the source in a rotated residual basis (same function), then fine-tuned like (a): raw
      coordinates no longer line up, only a residual map (``align``) can carry the adapter;
  (d) random: an unrelated random model of the same shape (negative control).
Recovery ratio RR = (acc_transfer − acc_target_base) / (acc_target_lora − acc_target_base), with a paired
bootstrap 95% CI over questions. Also a shuffled-layer control (layer l -> L-1-l, direct, no threshold).
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import yaml

from paw.data.formats import alpaca_prompt
from paw.data.synthetic import generate_alpaca, write_jsonl
from paw.errors import PawError
from paw.models.tiny_variants import fine_tune, grow_deeper, rotate

LR = 3e-3


def mc_docs(seed: int) -> list[tuple[str, list[str], int]]:
    """Every word of the category table under both prompts; choices: its category and 3 others (chance 25%)."""
    from paw.data.synthetic import CATEGORY_PROMPTS, vocab

    table = vocab()["categories"]
    rng = random.Random(seed)
    docs = []
    for group, words in sorted(table.items()):
        for word in words:
            for prompt in CATEGORY_PROMPTS:
                choices = [group, *rng.sample([g for g in table if g != group], 3)]
                rng.shuffle(choices)
                docs.append((alpaca_prompt(prompt, word), choices, choices.index(group)))
    return docs


def correctness(model_dir: Path, adapter: Path | None, docs) -> list[int]:
    """1/0 per question: is the gold word the most likely continuation (plus EOS) of the prompt."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.eval.loglik import loglikelihoods
    from paw.eval.metrics import argmax

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    requests, groups = [], []
    for context, choices, _ in docs:
        groups.append(list(range(len(requests), len(requests) + len(choices))))
        requests += [(context, choice + tokenizer.eos_token) for choice in choices]
    scores, _ = loglikelihoods(model, tokenizer, requests, groups, batch_size=32)
    return [
        int(argmax([scores[i].loglik for i in g]) == gold)
        for g, (_, _, gold) in zip(groups, docs, strict=True)
    ]


def train_lora(model_dir: Path, train_file: Path, root: Path, name: str, steps: int) -> Path:
    from paw.config.loader import validate_dict
    from paw.train.recipe import run_training

    config = validate_dict(
        {
            "model": {"name_or_path": str(model_dir)},
            "peft": {"r": 16, "alpha": 32, "target_modules": "all-linear"},
            "data": {"train_file": str(train_file), "max_length": 128},
            "training": {
                "max_steps": steps,
                "learning_rate": LR,
                "schedule": "cosine",
                "warmup_steps": 10,
                "per_device_train_batch_size": 8,
                "logging_steps": 100,
                "seed": 0,
            },
            "tracking": {"backends": []},
            "experiment": {"root": str(root)},
        },
        "transfer_quality",
    )
    return run_training(config, name=name).experiment.final_model


def bootstrap_rr(base: list[int], lora: list[int], moved: list[int], n_boot: int, seed: int = 0):
    """RR and its paired-bootstrap 95% CI (questions resampled together for all three systems)."""

    def rr(idx):
        acc_base, acc_lora, acc_moved = (sum(x[i] for i in idx) / len(idx) for x in (base, lora, moved))
        gain = acc_lora - acc_base
        return None if gain <= 0 else (acc_moved - acc_base) / gain

    n = len(base)
    point = rr(range(n))
    rng = random.Random(seed)
    samples = sorted(
        v for v in (rr([rng.randrange(n) for _ in range(n)]) for _ in range(n_boot)) if v is not None
    )
    if not samples:
        return point, None, None
    return point, samples[int(0.025 * len(samples))], samples[int(0.975 * len(samples)) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400, help="LoRA training steps")
    parser.add_argument("--ft-steps", type=int, default=60, help="full fine-tune steps making the targets")
    parser.add_argument("--boot", type=int, default=1000)
    args = parser.parse_args()

    from paw.models.tiny import build_tiny_model, tiny_model_dir
    from paw.transfer.api import TransferOptions, transfer

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="paw-transfer-quality-"))
    train_file = write_jsonl(generate_alpaca(800, seed=0, subtasks=("category",)), work / "train.jsonl")
    docs = mc_docs(seed=99)
    source = tiny_model_dir("paw-tiny/qwen2")
    source_lora = train_lora(source, train_file, work / "exp", "source", args.steps)
    pairs = {
        "upgrade": (fine_tune(source, work / "upgrade", args.ft_steps), "name"),
        "grown": (
            fine_tune(grow_deeper(source, work / "grown0"), work / "grown", args.ft_steps),
            "proportional",
        ),
        "rotated": (fine_tune(rotate(source, work / "rotated0"), work / "rotated", args.ft_steps), "name"),
        "random": (build_tiny_model("qwen2", work / "random", seed=1), "name"),
    }
    rows = [
        f"source base acc {sum(correctness(source, None, docs)) / len(docs):.3f}, "
        f"source LoRA acc {sum(correctness(source, source_lora, docs)) / len(docs):.3f}"
    ]
    table = [
        "| pair | method | units passed | acc target base | acc target LoRA | acc transferred | RR [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    for pair, (target, depth) in pairs.items():
        base = correctness(target, None, docs)
        lora = correctness(
            target, train_lora(target, train_file, work / "exp", f"target-{pair}", args.steps), docs
        )
        runs = [(m, TransferOptions(method=m, depth=depth)) for m in ("direct", "project", "align")]
        runs.append(("project k=0.95 energy", TransferOptions(method="project", depth=depth, k=0.95)))
        if pair == "grown":
            runs.append(("direct, cka depth map", TransferOptions(method="direct", depth="cka")))
        runs.append(
            (
                "shuffled-layer control",
                TransferOptions(method="direct", depth="reversed", tau=0.0, chance_multiple=0.0),
            )
        )
        for label, options in runs:
            out = work / f"moved-{pair}-{'-'.join(label.split()).replace('=', '')}"
            try:
                report = transfer(source_lora, str(target), out, source=str(source), options=options)
                moved, passed = correctness(target, out, docs), f"{report['transferred']}/{report['units']}"
            except PawError as err:
                if "no module passed" not in str(err):
                    raise
                moved, passed = base, "0/14 (nothing written)"
            point, low, high = bootstrap_rr(base, lora, moved, args.boot)
            fmt = (
                "undefined"
                if point is None
                else f"{point:.2f} [{low:.2f}, {high:.2f}]"
                if low is not None
                else f"{point:.2f}"
            )
            table.append(
                f"| {pair} | {label} | {passed} | {sum(base) / len(base):.3f} | {sum(lora) / len(lora):.3f} | "
                f"{sum(moved) / len(moved):.3f} | {fmt} |"
            )
            print(table[-1], flush=True)
    print("\n".join(rows))
    print(
        yaml.safe_dump(
            {
                "steps": args.steps,
                "ft_steps": args.ft_steps,
                "questions": len(docs),
                "seconds": round(time.perf_counter() - started, 1),
            }
        ).strip()
    )
    print("\n".join(table))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
