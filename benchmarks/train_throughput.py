"""LoRA SFT throughput on one device: TRL as users write it vs paw (padded and packed) vs a bare PyTorch loop.
Real (non-pad) tokens per second; same model, data, micro-batch, precision and steps.

    .venv/bin/python benchmarks/train_throughput.py --model paw-shape/qwen2.5-0.5b [--precision fp32|bf16] \
        [--weights fp32|bf16] [--steps 4] [--batch 4] [--runs 'paw, padded;...'] [--json out.json]

Runs, on the same tokenised examples, micro-batch, weight dtype (``--weights``) and precision (``--precision fp32``,
or ``bf16``: autocast, which TRL's SFTConfig turns on by default; on a CPU with AVX512-BF16 it is much faster), on
the GPU when there is one (peak CUDA memory reported too):
  (a) TRL ``SFTTrainer`` + peft as a typical user writes it, padding (``packing=False``; TRL's defaults, which
      include gradient checkpointing);
  (a') the same with ``gradient_checkpointing=False`` (faster, more activation memory: what paw does by default);
  (b) TRL ``SFTTrainer`` with ``packing=True`` (its defaults: best-fit packing, padding-free batches);
  (c) paw, padded batches (``data.packing: false``);
  (c') the same with ``model.gradient_checkpointing: true`` (to compare with (a) at its memory);
  (d) paw, packed rows with a block-diagonal mask (``data.packing: true``);
  (e) a bare PyTorch loop (AdamW, forward, backward, step) over the same padded batches as (c) with paw's model
      and the model's own loss (full logits at every position);
  (f) paw, padded, QLoRA 4-bit (CUDA and bitsandbytes; only when named in ``--runs``).
Model: any model paw resolves (``--model``; the figures use the ``paw-shape/*`` stand-ins: published shapes, real
tokenizers, random weights); data: ARC-Challenge train in the instruction format
(``--data``, or ``../shared/data/commonsense``) when present, else paw's synthetic instructions. Throughput is real tokens / train
seconds after one warm-up step, and each run's peak RSS; each run in its own process; every run reads the
examples in file order (``train_sampling_strategy: sequential``), so the padded runs see the same batches. (b) on a CPU or without flash-attention lets examples attend to each other
(TRL warns); (d) does not (see tests/data/test_packing.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "commonsense" / "ARC-Challenge-train.json"


def data_file(work: Path, source: Path | None = None) -> Path:
    from paw.data.synthetic import generate_alpaca, write_jsonl

    source = source or SHARED
    if source.is_file():
        rows = json.loads(source.read_text())
        return write_jsonl(
            [{k: r[k] for k in ("instruction", "input", "output")} for r in rows], work / "arc.jsonl"
        )
    return write_jsonl(generate_alpaca(1000, 0), work / "synthetic.jsonl")


def run_paw(
    model: Path,
    train: Path,
    work: Path,
    packing: bool,
    steps: int,
    batch: int,
    bf16: bool,
    weights: str = "fp32",
    checkpointing: bool = False,
    quantization: str = "none",
) -> dict:
    from paw.config.loader import validate_dict
    from paw.train.recipe import run_training

    model_cfg = {"name_or_path": str(model), "dtype": weights, "gradient_checkpointing": checkpointing}
    cfg = {
        "model": {**model_cfg, "quantization": quantization},
        "peft": {"r": 16, "alpha": 32, "target_modules": "all-linear"},
        "data": {"train_file": str(train), "max_length": 512, "packing": packing},
        "training": {
            "max_steps": steps,
            "learning_rate": 1e-4,
            "per_device_train_batch_size": batch,
            "logging_steps": steps,
            "bf16": bf16,  # bf16 autocast, like TRL's SFTConfig default
            "train_sampling_strategy": "sequential",  # every run sees the same batches
        },
        "tracking": {"backends": []},
        "experiment": {"root": str(work / "exps")},
    }
    name = f"paw-{'packed' if packing else 'padded'}{'-ckpt' if checkpointing else ''}-{quantization}"
    report = run_training(validate_dict(cfg, "bench"), name=name).report
    # logged at step 1 and at the last step: the last record's rate covers steps 2..N (after the warm-up step)
    return {"tokens": report["tokens_seen"], "tokens_per_s": report["steps"][-1]["tokens_per_s"]}


def run_trl(
    model_dir: Path,
    train: Path,
    work: Path,
    packing: bool,
    steps: int,
    batch: int,
    bf16: bool,
    weights: str = "fp32",
    checkpointing: bool = True,
) -> dict:
    """What a typical user writes: SFTTrainer + LoraConfig on the same prompt/completion text."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from paw.data.formats import alpaca_prompt
    from paw.data.readers import read_rows

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = [r.row for r in read_rows(train)]
    dataset = Dataset.from_list(
        [
            {"prompt": alpaca_prompt(r["instruction"], r.get("input") or ""), "completion": r["output"]}
            for r in rows
        ]
    )

    clock = warmup_clock()
    args = SFTConfig(
        output_dir=str(work / f"trl-{packing}"),
        max_steps=steps,
        per_device_train_batch_size=batch,
        learning_rate=1e-4,
        max_length=512,
        packing=packing,
        report_to="none",
        save_strategy="no",
        logging_steps=steps,
        disable_tqdm=True,
        include_num_input_tokens_seen="non_padding",
        use_cpu=not torch.cuda.is_available(),
        bf16=bf16,
        gradient_checkpointing=checkpointing,
        train_sampling_strategy="sequential",  # every run sees the same batches
    )
    trainer = SFTTrainer(
        model=AutoModelForCausalLM.from_pretrained(model_dir, dtype=TORCH_DTYPES[weights]),  # as paw's
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"),
        callbacks=[clock],
    )
    trainer.train()
    return clock.result(trainer)


def warmup_clock():
    """A Trainer callback that starts timing after the first (warm-up) step; ``result(trainer)`` gives the real
    tokens and tokens/s since."""
    from transformers import TrainerCallback

    class WarmupClock(TrainerCallback):
        def __init__(self):
            self.start, self.tokens0 = None, 0

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                self.start, self.tokens0 = time.perf_counter(), state.num_input_tokens_seen

        def result(self, trainer) -> dict:
            seconds = time.perf_counter() - self.start
            tokens = trainer.state.num_input_tokens_seen - self.tokens0
            return {"tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}

    return WarmupClock()


def run_bare(
    model: Path,
    train: Path,
    work: Path,
    packing: bool,
    steps: int,
    batch: int,
    bf16: bool,
    weights: str = "fp32",
) -> dict:
    """No Trainer: paw's model and tokenised data, batches padded by the same collator, AdamW."""
    import torch
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from paw.config.loader import validate_dict
    from paw.train.recipe import prepare

    cfg = {
        "model": {"name_or_path": str(model), "dtype": weights},
        "peft": {"r": 16, "alpha": 32, "target_modules": "all-linear"},
        "data": {"train_file": str(train), "max_length": 512},
        "training": {"max_steps": steps, "per_device_train_batch_size": batch},
    }
    prepared = prepare(validate_dict(cfg, "bench"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model_ = prepared.model.to(device).train()
    collate = DataCollatorForLanguageModeling(pad_token_id=prepared.tokenizer.pad_token_id)
    examples = prepared.data.train.examples
    order = list(range(len(examples)))  # the same batches as the Trainer runs (sequential order)
    optimizer = torch.optim.AdamW([p for p in model_.parameters() if p.requires_grad], lr=1e-4)
    tokens, start = 0, None
    for step in range(steps):
        rows = [examples[i] for i in order[step * batch : (step + 1) * batch]]
        inputs = collate([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = model_(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step == 0:  # the warm-up step is not timed
            start = time.perf_counter()
        else:
            tokens += int(inputs["attention_mask"].sum())
    return {"tokens": tokens, "tokens_per_s": round(tokens / (time.perf_counter() - start), 1)}


def run_trl_no_checkpointing(*args) -> dict:
    return run_trl(*args, checkpointing=False)


def run_paw_checkpointing(*args) -> dict:
    return run_paw(*args, checkpointing=True)


def run_paw_qlora(*args) -> dict:
    return run_paw(*args, quantization="4bit")


RUNS = {
    "TRL SFTTrainer, padding": (run_trl, False),
    "TRL, padding, no grad. ckpt": (run_trl_no_checkpointing, False),
    "TRL SFTTrainer, packing=True": (run_trl, True),
    "paw, padded": (run_paw, False),
    "paw, padded, grad. ckpt": (run_paw_checkpointing, False),
    "paw, packed (data.packing)": (run_paw, True),
    "bare PyTorch loop, padded": (run_bare, False),
    "paw, padded, QLoRA 4-bit": (run_paw_qlora, False),  # CUDA + bitsandbytes only; not in the default set
}
DEFAULT_RUNS = [name for name in RUNS if "QLoRA" not in name]
TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def report_child(result: dict) -> None:
    """In a run's own process: add its peak memory (RSS, and CUDA when there is a GPU) and print the RESULT line
    the parent reads."""
    import torch

    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if torch.cuda.is_available():
        result["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20)
    print("RESULT " + json.dumps(result))


def print_table(results: dict, base: float | None) -> None:
    """The markdown table of the runs: real tokens/s, the ratio to ``base`` (TRL's defaults), peak memory."""
    print("| run | real tokens/s | vs TRL defaults | peak RSS (MB) | peak CUDA (MB) |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        if "error" in r:
            print(f"| {name} | failed: {r['error']} | | | |")
            continue
        ratio = f"{r['tokens_per_s'] / base:.2f}x" if base else "n/a"
        print(
            f"| {name} | {r['tokens_per_s']:.1f} | {ratio} | {r['peak_rss_mb']} | {r.get('peak_cuda_mb', '-')} |"
        )


def run_child(name: str, command: list[str]) -> dict:
    """Run one configuration in its own process; its RESULT, or ``{"error": last stderr line}``."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{name}: FAILED\n{done.stderr[-3000:]}", file=sys.stderr, flush=True)
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    print(f"{name}: {result}", file=sys.stderr, flush=True)
    return result


def matmul_parameters(model_dir: str) -> int:
    """Weights that a token's forward pass multiplies by (from the safetensors headers; an untied input embedding
    is a lookup, not a product): forward FLOPs per token ~ 2x this."""
    from safetensors import safe_open

    config = json.loads((Path(model_dir) / "config.json").read_text())
    total = 0
    for shard in Path(model_dir).glob("*.safetensors"):
        with safe_open(str(shard), "pt") as f:
            for key in f.keys():
                shape = f.get_slice(key).get_shape()
                count = 1
                for dim in shape:
                    count *= dim
                total += count
    if not config.get("tie_word_embeddings", False):
        total -= config["vocab_size"] * config["hidden_size"]
    return total


def machine() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__} (CUDA {torch.version.cuda})"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="paw-shape/qwen2.5-0.5b", help="any model paw resolves")
    parser.add_argument("--steps", type=int, default=4, help="optimizer steps (the first is not timed)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16"],
        default="fp32",
        help="fp32, or bf16 autocast (TRL's SFTConfig default) for every run",
    )
    parser.add_argument(
        "--weights", choices=["fp32", "bf16"], default="fp32", help="dtype the weights load in"
    )
    parser.add_argument(
        "--data", type=Path, help="ARC-style JSON rows (default: ../shared/data, else synthetic)"
    )
    parser.add_argument("--json", type=Path, help="also write the results here (machine-readable)")
    parser.add_argument(
        "--runs", help="a subset of the runs, separated by semicolons (default: all but QLoRA)"
    )
    parser.add_argument("--only", help="run one configuration in this process (used internally)")
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    from paw.utils.hf import quiet_hf

    quiet_hf()
    if args.only is not None:  # one run, in its own process: no state carried over from another run
        work = Path(args.work)
        run, packing = RUNS[args.only]
        data = Path(next(work.glob("*.jsonl")))
        bf16 = args.precision == "bf16"
        result = run(Path(args.model_dir), data, work, packing, args.steps, args.batch, bf16, args.weights)
        report_child(result)
        return
    from paw.models.resolve import resolve_model

    model_dir = resolve_model(args.model).location
    config = json.loads((Path(model_dir) / "config.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="paw-throughput-"))
    train = data_file(work, args.data)
    results = {}
    for name in args.runs.split(";") if args.runs else DEFAULT_RUNS:
        command = [sys.executable, __file__, "--only", name, "--work", str(work), "--model-dir", model_dir]
        command += ["--steps", str(args.steps), "--batch", str(args.batch), "--precision", args.precision]
        command += ["--weights", args.weights]
        results[name] = run_child(name, command)
    ok = {name: r for name, r in results.items() if "error" not in r}
    base = (ok.get("TRL SFTTrainer, padding") or next(iter(ok.values()), {})).get("tokens_per_s")
    header = (
        f"machine: {machine()}; precision {args.precision}, {args.weights} weights; data: {train.name}, "
        f"steps {args.steps}, batch {args.batch}, model {args.model} (hidden {config['hidden_size']} x "
        f"{config['num_hidden_layers']} layers, vocabulary {config['vocab_size']}); each run in its own process"
    )
    print(header)
    print_table(results, base)
    if "paw, padded" in ok and "bare PyTorch loop, padded" in ok:
        ratio = ok["paw, padded"]["tokens_per_s"] / ok["bare PyTorch loop, padded"]["tokens_per_s"]
        print(f"paw padded / the bare loop on the same padded batches: {ratio:.2f}x")
    if args.json:
        summary = {"header": header, "model": args.model, "matmul_parameters": matmul_parameters(model_dir)}
        args.json.write_text(
            json.dumps({**summary, "steps": args.steps, "batch": args.batch, "runs": results})
        )
    if len(ok) < len(results):
        raise SystemExit(f"failed: {', '.join(n for n in results if n not in ok)}")


if __name__ == "__main__":
    main()
