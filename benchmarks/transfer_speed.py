"""Time and peak memory of ``paw transfer`` for r=16 all-linear LoRA adapters on real model shapes.

    .venv/bin/python benchmarks/transfer_speed.py --pair qwen2.5-0.5b                 # all 24 layers
    .venv/bin/python benchmarks/transfer_speed.py --pair qwen2.5-7b --layers 4        # 4 of 28 layers
    .venv/bin/python benchmarks/transfer_speed.py --pair gemma-2-2b:qwen2.5-1.5b --layers 4
    .venv/bin/python benchmarks/transfer_speed.py --pair qwen2.5-0.5b --methods align-fit

Models are the ``paw-shape/*`` stand-ins (published shapes, random bf16 weights; `paw fetch-tokenizers` first),
depth-cut with ``--layers`` where the full model would not fit this machine's time or disk. A pair of one name is
that model and a perturbed copy of it (W + 0.1·noise: a further-trained release, so the similarity gate passes
and the methods do their work); a pair ``a:b`` is two independent families, run with the gate open
(``--similarity-threshold 0 --chance-multiple 0``) so that ``project`` maps every unit. The adapter has random
A and B on all seven projections of every layer. Each transfer runs as ``paw transfer`` in its own process.
``--methods`` picks the methods (``align-fit`` reads the corpus lines as its calibration text and runs with its gate
open: a random adapter on random weights has no effect worth fitting, but the passes and fits cost what they cost).
Reported: the process's wall time, the transfer's own seconds per layer (from its report) scaled to the
published depth, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# `paw` in a process that reports its own peak RSS on exit (RUSAGE_CHILDREN would give the largest child so far)
REPORT_PEAK = (
    "import resource, runpy, sys\n"
    "sys.argv = ['paw', *sys.argv[1:]]\n"
    "try:\n    runpy.run_module('paw', run_name='__main__')\n"
    "finally:\n    print('PEAK_RSS_KB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)"
)
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def perturbed_copy(model_dir: Path, out: Path, seed: int = 1) -> Path:
    """A copy of a stand-in whose decoder weights moved by 10% of their scale (a later release)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(model_dir, out)
    g = torch.Generator().manual_seed(seed)
    for file in sorted(out.glob("*.safetensors")):
        tensors = load_file(str(file))
        for key, value in tensors.items():
            if ".layers." in key and value.dim() == 2:
                noise = torch.randn(value.shape, generator=g) * value.float().std()
                tensors[key] = (value.float() + 0.1 * noise).to(value.dtype)
        save_file(tensors, str(file), metadata={"format": "pt"})
    return out


def random_adapter(model_dir: Path, out: Path, r: int) -> Path:
    """Random LoRA factors on every projection of every layer, shapes read from the weight files' headers."""
    import torch
    from peft import LoraConfig
    from safetensors import safe_open
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(7)
    lora, modules = {}, set()
    for file in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(file), "pt") as weights:
            for key in weights.keys():
                name = key.removesuffix(".weight")
                if name.split(".")[-1] not in PROJECTIONS:
                    continue
                rows, cols = weights.get_slice(key).get_shape()
                lora[f"base_model.model.{name}.lora_A.weight"] = torch.randn(r, cols, generator=g) * 0.01
                lora[f"base_model.model.{name}.lora_B.weight"] = torch.randn(rows, r, generator=g) * 0.01
                modules.add(name.split(".")[-1])
    out.mkdir(parents=True)
    config = LoraConfig(r=r, lora_alpha=2 * r, target_modules=sorted(modules), task_type="CAUSAL_LM")
    config.base_model_name_or_path = str(model_dir)
    config.save_pretrained(str(out))
    save_file(lora, str(out / "adapter_model.safetensors"))
    return out


def _gate(method: str, independent: bool) -> list[str]:
    """The gate's options: open between independent families (every unit mapped), and always for ``align-fit``,
    whose gate reads the held-out fit of a random adapter on random weights."""
    if method == "align-fit":
        return ["--similarity-threshold", "0"]
    return ["--similarity-threshold", "0", "--chance-multiple", "0"] if independent else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", default="qwen2.5-0.5b", help="a stand-in name, or source:target")
    parser.add_argument("--layers", type=int, default=None, help="depth cut (default: the published depth)")
    parser.add_argument("--r", type=int, default=16)
    parser.add_argument(
        "--methods",
        help="comma-separated methods (default: direct,project for one name, project for a pair); a pair's "
        "methods run with the gate open",
    )
    args = parser.parse_args()

    import torch

    from paw.models import shape
    from paw.models.resolve import resolve_model

    source_name, _, target_name = args.pair.partition(":")
    cut = f"@{args.layers}" if args.layers else ""
    source = Path(resolve_model(f"{shape.PREFIX}{source_name}{cut}").location)
    published = shape.shapes()[target_name or source_name]["config"]["num_hidden_layers"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if target_name:
            target = Path(resolve_model(f"{shape.PREFIX}{target_name}{cut}").location)
            methods = (args.methods or "project").split(",")
        else:
            target = perturbed_copy(source, tmp / "target")
            methods = (args.methods or "direct,project").split(",")
        runs = [(method, _gate(method, bool(target_name))) for method in methods]
        layers = json.loads((target / "config.json").read_text())["num_hidden_layers"]
        adapter = random_adapter(source, tmp / "adapter", args.r)
        print(
            f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
            f"{args.pair} ({layers} of {published} layers), r={args.r}, all 7 projections"
        )
        print(
            "| pair | method | units | wall s (process) | s/layer (transfer) | est. all layers (s) | peak RSS (MB) |"
        )
        print("|---|---|---|---|---|---|---|")
        for method, extra in runs:
            out = tmp / f"out-{method}"
            cmd = [
                sys.executable,
                "-c",
                REPORT_PEAK,
                "transfer",
                "--adapter",
                str(adapter),
                "--source",
                str(source),
            ]
            cmd += ["--target", str(target), "--output", str(out), "--method", method, *extra]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            rss = int(done.stderr.rsplit("PEAK_RSS_KB ", 1)[1].split()[0]) / 1024
            report = json.loads((out / "transfer_report.json").read_text())
            per_layer = report["seconds"] / layers
            print(
                f"| {args.pair} | {method} | {report['transferred']}/{report['units']} | {seconds:.1f} | "
                f"{per_layer:.2f} | {per_layer * published:.0f} | {rss:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
