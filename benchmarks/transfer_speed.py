"""Time and peak memory of ``paw transfer`` for r=16 all-linear LoRA adapters over Qwen2.5-shaped layer sets.

    .venv/bin/python benchmarks/transfer_speed.py --shape 0.5b            # all 24 layers
    .venv/bin/python benchmarks/transfer_speed.py --shape 7b --layers 2   # 2 of 28 layers, time scaled per layer

Weights are random (bf16 safetensors written once into a temp dir; source and target differ by a small
perturbation so the similarity gate passes). Only the decoder projections are written: transfer reads nothing
else. Each transfer runs as ``paw transfer`` in its own process. Reported: wall time of that process, the transfer's
own seconds per layer (from its report) scaled to all layers, and the peak RSS of the transfer processes.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHAPES = {  # hidden, intermediate, heads, kv heads, layers (Qwen2.5 configs)
    "0.5b": (896, 4864, 14, 2, 24),
    "7b": (3584, 18944, 28, 4, 28),
}


def write_model(root: Path, shape: str, layers: int, seed: int, base=None) -> tuple[Path, dict]:
    import torch
    from safetensors.torch import save_file

    hidden, inter, heads, kv, _ = SHAPES[shape]
    head_dim = hidden // heads
    dims = {"q": hidden, "k": kv * head_dim, "v": kv * head_dim}
    g = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(layers):
        p = f"model.layers.{layer}"
        shapes = {
            **{f"{p}.self_attn.{n}_proj.weight": (dims[n], hidden) for n in "qkv"},
            f"{p}.self_attn.o_proj.weight": (hidden, hidden),
            f"{p}.mlp.gate_proj.weight": (inter, hidden),
            f"{p}.mlp.up_proj.weight": (inter, hidden),
            f"{p}.mlp.down_proj.weight": (hidden, inter),
        }
        for key, size in shapes.items():
            noise = torch.randn(size, generator=g) * 0.02
            tensors[key] = (base[key].float() + 0.1 * noise if base else noise).to(torch.bfloat16)
    root.mkdir(parents=True)
    save_file(tensors, str(root / "model.safetensors"))
    config = {
        "model_type": "qwen2",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_attention_heads": heads,
        "num_key_value_heads": kv,
        "num_hidden_layers": layers,
    }
    (root / "config.json").write_text(json.dumps(config))
    return root, tensors


def write_adapter(root: Path, tensors: dict, r: int) -> Path:
    import torch
    from peft import LoraConfig
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(7)
    lora, modules = {}, []
    for key, weight in tensors.items():
        module = key.removesuffix(".weight")
        modules.append(module)
        lora[f"base_model.model.{module}.lora_A.weight"] = torch.randn(r, weight.shape[1], generator=g) * 0.01
        lora[f"base_model.model.{module}.lora_B.weight"] = torch.randn(weight.shape[0], r, generator=g) * 0.01
    root.mkdir(parents=True)
    LoraConfig(r=r, lora_alpha=2 * r, target_modules=modules, task_type="CAUSAL_LM").save_pretrained(
        str(root)
    )
    save_file(lora, str(root / "adapter_model.safetensors"))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="0.5b")
    parser.add_argument("--layers", type=int, default=None, help="layers to build (default: all)")
    parser.add_argument("--r", type=int, default=16)
    args = parser.parse_args()

    import torch

    total_layers = SHAPES[args.shape][4]
    layers = args.layers or total_layers
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src, tensors = write_model(tmp / "source", args.shape, layers, seed=0)
        tgt, _ = write_model(tmp / "target", args.shape, layers, seed=1, base=tensors)
        adapter = write_adapter(tmp / "adapter", tensors, args.r)
        del tensors
        print(
            f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
            f"Qwen2.5-{args.shape} shape, {layers} of {total_layers} layers, r={args.r}, all 7 projections"
        )
        print(
            "| method | units | wall s (process) | s/layer (transfer) | est. all layers (s) | peak RSS of the process (MB) |"
        )
        print("|---|---|---|---|---|---|")
        for method in ("direct", "project"):
            # Each transfer runs as a user would run it, in its own process, so its peak RSS is its own.
            cmd = [
                sys.executable,
                "-m",
                "paw",
                "transfer",
                "--adapter",
                str(adapter),
                "--source",
                str(src),
                "--target",
                str(tgt),
                "--output",
                str(tmp / f"out-{method}"),
                "--method",
                method,
            ]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True)
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                raise SystemExit(done.stderr)
            report = json.loads((tmp / f"out-{method}" / "transfer_report.json").read_text())
            rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            print(
                f"| {method} | {report['transferred']}/{report['units']} | {seconds:.1f} | "
                f"{report['seconds'] / layers:.2f} | {report['seconds'] / layers * total_layers:.0f} | {rss:.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
