"""Multi-process training through torchrun on CPU (gloo), the shipped launcher configs, and launch mistakes that
are refused before any model loads."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from paw.data.synthetic import generate_alpaca, write_jsonl
from paw.errors import PawError
from paw.train.launch import per_device_batch
from tests.conftest import REPO, run_paw, run_torchrun, small_config, write_config


def _adapter(exp: Path) -> dict:
    return load_file(exp / "models" / "final_model" / "adapter_model.safetensors")


def test_shipped_launcher_configs_load():
    from accelerate.commands.config.config_args import load_config_from_file

    assert load_config_from_file(str(REPO / "configs/accelerate/ddp.yaml")).distributed_type == "MULTI_GPU"
    assert load_config_from_file(str(REPO / "configs/accelerate/fsdp.yaml")).distributed_type == "FSDP"
    zero2 = json.loads((REPO / "configs/deepspeed/zero2.json").read_text())
    zero3 = json.loads((REPO / "configs/deepspeed/zero3.json").read_text())
    assert (
        zero2["zero_optimization"]["stage"] == 2
        and zero2["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    )
    assert zero3["zero_optimization"]["stage"] == 3


def test_global_batch_is_split_over_processes():
    assert per_device_batch(32, 4, 2, 4) == 4
    assert per_device_batch(None, 4, 2, 4) == 4
    with pytest.raises(PawError, match="cannot be split over 4 process"):
        per_device_batch(30, 4, 2, 4)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["training.deepspeed=configs/deepspeed/zero2.json"], "training.deepspeed needs DeepSpeed"),
        (["training.deepspeed=nowhere.json"], "training.deepspeed: nowhere.json: file not found"),
        (["training.fsdp=full_shard"], "FSDP needs CUDA GPUs"),
        (
            ["training.global_batch_size=10", "training.gradient_accumulation_steps=4"],
            "cannot be split over 1 process",
        ),
    ],
)
def test_launch_mistakes_are_refused_before_loading(tmp_path, alpaca_file, overrides, message):
    if torch.cuda.is_available():
        pytest.skip("these are the CPU-side refusals")
    path = write_config(tmp_path / "c.yaml", small_config(alpaca_file, tmp_path / "exps"))
    result = run_paw("train", str(path), *overrides, "--name", "x", cwd=REPO)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "exps" / "x").exists()


@pytest.mark.slow
def test_two_process_ddp_equals_one_process_with_the_same_global_batch(tmp_path):
    rows = generate_alpaca(8, seed=3)  # one step sees all 8 rows in both runs, whatever the sampler
    data = write_jsonl(rows, tmp_path / "train.jsonl")
    cfg = small_config(
        data, tmp_path / "exps", max_steps=1, learning_rate=0.5, optim="sgd", global_batch_size=8
    )
    path = write_config(tmp_path / "c.yaml", cfg)
    single = run_paw("train", str(path), "--name", "one")
    assert single.returncode == 0, single.stderr
    ddp = run_torchrun("train", str(path), "--name", "two")
    assert ddp.returncode == 0, ddp.stderr
    assert sorted(p.name for p in (tmp_path / "exps").iterdir()) == [
        "one",
        "two",
    ]  # rank 1 wrote no experiment
    plan = json.loads((tmp_path / "exps" / "two" / "results" / "training_report.json").read_text())["plan"]
    assert (plan["processes"], plan["global_batch"]) == (2, 8)  # 2 processes x micro-batch 4
    a, b = _adapter(tmp_path / "exps" / "one"), _adapter(tmp_path / "exps" / "two")
    moved = [k for k in a if "lora_B" in k and a[k].abs().max() > 0]
    assert moved  # the step changed the adapter...
    for key in a:  # ...and both ranks' gradients were combined exactly as one process computes them
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_two_process_dpo_equals_one_process_with_the_same_global_batch(tmp_path):
    """DPO under torchrun: the reference (adapter off) and the pair loss are per rank; DDP combines the
    gradients as one process with the whole batch computes them."""
    from paw.config.loader import load_config
    from paw.data.synthetic_preference import generate_preference_pairs
    from paw.train.recipe import run_training

    data = write_jsonl(generate_preference_pairs(8, seed=3), tmp_path / "pairs.jsonl")
    cfg = small_config(
        data, tmp_path / "exps", max_steps=1, learning_rate=0.5, optim="sgd", global_batch_size=8
    )
    cfg["training"]["objective"] = "dpo"
    cfg["preference"] = {"beta": 0.5}
    path = write_config(tmp_path / "c.yaml", cfg)
    run_training(load_config(path), name="one")  # one process: this one
    ddp = run_torchrun("train", str(path), "--name", "two")
    assert ddp.returncode == 0, ddp.stderr
    a, b = _adapter(tmp_path / "exps" / "one"), _adapter(tmp_path / "exps" / "two")
    assert [k for k in a if "lora_B" in k and a[k].abs().max() > 0]
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-4, atol=1e-6)


def test_eight_bit_optimizer_without_cuda_is_refused(tmp_path, alpaca_file):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    path = write_config(tmp_path / "c.yaml", small_config(alpaca_file, tmp_path / "exps"))
    result = run_paw("train", str(path), "training.optim=adamw_bnb_8bit")
    assert result.returncode == 2 and "runs in bitsandbytes on CUDA" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "lever",
    [["model.gradient_checkpointing=true"], ["training.bf16=true"]],
    ids=["gradient_checkpointing", "bf16_autocast"],
)
def test_memory_levers_train_like_the_plain_run(tmp_path, alpaca_file, lever):
    """Gradient checkpointing recomputes the same activations (same losses); bf16 autocast stays close."""
    path = write_config(
        tmp_path / "c.yaml", small_config(alpaca_file, tmp_path / "exps", max_steps=4, logging_steps=1)
    )
    assert run_paw("train", str(path), "--name", "plain").returncode == 0
    result = run_paw("train", str(path), *lever, "--name", "lever")
    assert result.returncode == 0, result.stderr

    def losses(name):
        report = json.loads((tmp_path / "exps" / name / "results" / "training_report.json").read_text())
        return [s["loss"] for s in report["steps"]]

    tolerance = 1e-5 if "gradient" in lever[0] else 5e-2
    assert losses("lever") == pytest.approx(losses("plain"), rel=tolerance)


@pytest.mark.slow
def test_two_process_run_resumes_from_its_checkpoint(tmp_path, alpaca_file):
    """A DDP run stopped after checkpoint 2 of 4 and resumed under torchrun ends where an uninterrupted one does."""
    cfg = small_config(alpaca_file, tmp_path / "exps", max_steps=4, global_batch_size=8, save={"every": 1})
    path = write_config(tmp_path / "c.yaml", cfg)
    for name in ("straight", "stopped"):
        done = run_torchrun("train", str(path), "--name", name)
        assert done.returncode == 0, done.stderr
    stopped = tmp_path / "exps" / "stopped"
    infos = sorted(p.parent.name for p in stopped.glob("checkpoints/*/checkpoint_info.json"))
    assert infos == [
        "checkpoint-1",
        "checkpoint-2",
        "checkpoint-3",
        "checkpoint-4",
    ]  # rank 0 published them all
    # each was published only once every rank had written its part
    for info in stopped.glob("checkpoints/*/checkpoint_info.json"):
        assert {"rng_state_0.pth", "rng_state_1.pth"} <= set(json.loads(info.read_text())["files"])
    # make it look killed after step 2: later checkpoints and the final adapter gone, status running
    for gone in ("checkpoints/checkpoint-3", "checkpoints/checkpoint-4", "models"):
        shutil.rmtree(stopped / gone)
    meta = json.loads((stopped / "metadata.json").read_text())
    (stopped / "metadata.json").write_text(json.dumps({**meta, "status": "running"}))
    resumed = run_torchrun("train", "--resume", str(stopped))
    assert resumed.returncode == 0, resumed.stderr
    a, b = _adapter(tmp_path / "exps" / "straight"), _adapter(stopped)
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=1e-5, atol=1e-6)
