"""What only a CUDA device exercises (marked ``gpu``: never in CI; `pytest -m gpu`, run by benchmarks/gpu_check.py):
QLoRA 4/8-bit train -> save -> eval -> merge on a depth-cut Qwen2.5-0.5B stand-in (real tokenizer), bf16 and fp16
LoRA, gradient checkpointing, a paged 8-bit optimizer, resume after SIGKILL, eval batch "auto" on the GPU.
The stand-in needs the Qwen2 tokenizer in the paw cache (`make tokenizers`; the GPU check carries it)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.conftest import mc_task_files, run_paw, small_config, train_until, write_config

pytestmark = pytest.mark.gpu
STAND_IN = "paw-shape/qwen2.5-0.5b@2"  # Qwen2.5-0.5B's widths and vocabulary, two layers


@pytest.fixture(autouse=True)
def _cuda():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")


def _needs_bitsandbytes():
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("needs bitsandbytes")


def _adapter(exp: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(exp / "models" / "final_model" / "adapter_model.safetensors"))


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_qlora_train_save_eval_merge(tmp_path, alpaca_file, bits):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from paw.models.resolve import resolve_model

    _needs_bitsandbytes()
    cfg = small_config(alpaca_file, tmp_path, max_steps=8, logging_steps=1)
    cfg["model"] = {"name_or_path": STAND_IN, "quantization": bits}
    done = run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", bits)
    assert done.returncode == 0, done.stderr
    exp = tmp_path / bits
    report = json.loads((exp / "results" / "training_report.json").read_text())
    assert [s["step"] for s in report["steps"]] == list(range(1, 9))
    assert all(torch.isfinite(torch.tensor(s["loss"])) for s in report["steps"])
    assert report["peak_memory_mb"]["cuda_allocated_mb"] > 0

    files = mc_task_files(tmp_path, ["arc_easy"], 24)
    scored = run_paw(
        "eval",
        str(exp),
        "--tasks",
        "arc_easy",
        "--data-file",
        files["arc_easy"],
        "--output",
        str(tmp_path / "ev"),
    )
    assert scored.returncode == 0, scored.stderr
    results = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert 0.0 <= results["tasks"]["arc_easy"]["acc"] <= 1.0

    merged = run_paw(
        "merge", "--adapter", str(exp / "models" / "final_model"), "--output", str(tmp_path / "merged")
    )
    assert merged.returncode == 0, merged.stderr
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert model.dtype in (torch.bfloat16, torch.float16, torch.float32)  # dequantized, never 4/8-bit
    assert not any("quant" in name or "absmax" in name for name, _ in model.state_dict().items())

    base = AutoModelForCausalLM.from_pretrained(resolve_model(STAND_IN).location)
    PeftModel.from_pretrained(base, str(exp / "models" / "final_model"))  # plain peft, no paw


@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_half_precision_lora_on_cuda(tmp_path, alpaca_file, dtype):
    import torch

    if dtype == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    cfg = small_config(alpaca_file, tmp_path, max_steps=10, logging_steps=1, learning_rate=3e-3)
    cfg["model"]["dtype"] = dtype
    done = run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", dtype)
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / dtype / "results" / "training_report.json").read_text())
    losses = [s["loss"] for s in report["steps"]]
    assert all(map(torch.isfinite, torch.tensor(losses)))
    assert losses[-1] < losses[0]  # it learns (the synthetic task is easy at lr 3e-3)
    assert all(torch.isfinite(t).all() for t in _adapter(tmp_path / dtype).values())


def test_gradient_checkpointing_and_paged_8bit_optimizer(tmp_path, alpaca_file):
    _needs_bitsandbytes()
    cfg = small_config(alpaca_file, tmp_path, max_steps=6, logging_steps=1, optim="paged_adamw_8bit")
    cfg["model"] = {"name_or_path": STAND_IN, "gradient_checkpointing": True}
    done = run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", "gc")
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "gc" / "results" / "training_report.json").read_text())
    assert [s["step"] for s in report["steps"]] == list(range(1, 7))


def test_sigkill_then_resume_on_cuda(tmp_path, alpaca_file):
    import torch

    cfg = small_config(alpaca_file, tmp_path, max_steps=12, save={"every": 4}, logging_steps=1)
    path = write_config(tmp_path / "c.yaml", cfg)
    assert run_paw("train", str(path), "--name", "straight").returncode == 0
    proc = train_until(path, "killed", "checkpoint-4")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "killed" / "models" / "final_model").exists()
    resumed = run_paw("train", "--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    report = json.loads((tmp_path / "killed" / "results" / "training_report.json").read_text())
    assert [s["step"] for s in report["steps"]] == list(range(1, 13))
    a, b = _adapter(tmp_path / "straight"), _adapter(tmp_path / "killed")
    for key in a:  # same seed and batches; GPU kernels may differ in the last bits
        torch.testing.assert_close(a[key], b[key], rtol=1e-3, atol=1e-5)


def test_eval_batch_auto_on_cuda_equals_batch_one(tmp_path):
    files = mc_task_files(tmp_path, ["arc_easy", "hellaswag"], 40)
    metrics = {}
    for batch in ("auto", "1"):
        out = tmp_path / f"b{batch}"
        args = [
            "--model",
            STAND_IN,
            "--tasks",
            "arc_easy,hellaswag",
            "--dtype",
            "fp32",
            "--batch-size",
            batch,
        ]
        data = [f"{t}={p}" for t, p in files.items()]
        done = run_paw("eval", *args, "--data-file", data[0], "--data-file", data[1], "--output", str(out))
        assert done.returncode == 0, done.stderr
        metrics[batch] = json.loads((out / "results.json").read_text())["tasks"]
    for task in ("arc_easy", "hellaswag"):  # fp32, TF32 off: batching must not change a choice
        assert metrics["auto"][task]["acc"] == metrics["1"][task]["acc"]
        assert metrics["auto"][task]["acc_norm"] == metrics["1"][task]["acc_norm"]
