"""End-to-end training through the real CLI and the recipe API, on the tiny Qwen2 model."""

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from paw.config.loader import load_config
from paw.train.recipe import run_training
from tests.conftest import REPO, run_paw, small_config, train_until, write_config

pytestmark = pytest.mark.slow


def _adapter(exp_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(exp_dir / "models" / "final_model" / "adapter_model.safetensors")


def test_commonsense_recipe_125_steps(tmp_path, alpaca_file, tiny_qwen2):
    """The acceptance run: two LR stages, 50 checkpoints, an adapter plain peft loads."""
    result = run_paw(
        "train",
        str(REPO / "configs" / "commonsense_qwen2.5_0.5b.yaml"),
        "model.name_or_path=paw-tiny/qwen2",
        f"data.train_file={alpaca_file}",
        "data.max_length=96",
        f"experiment.root={tmp_path}",
        "--name",
        "cs",
    )
    assert result.returncode == 0, result.stderr
    exp = tmp_path / "cs"
    report = json.loads((exp / "results" / "training_report.json").read_text())
    lrs = {s["step"]: s["lr"] for s in report["steps"]}
    assert len(lrs) == 125
    assert all(lrs[s] == pytest.approx(1e-4) for s in range(1, 76))
    assert all(lrs[s] == pytest.approx(1e-5) for s in range(76, 126))
    assert report["lr_switch_steps"] == [76]
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (exp / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == list(range(76, 126)) == report["checkpoints_written"]
    assert all(
        (exp / "checkpoints" / f"checkpoint-{s}" / "checkpoint_info.json").is_file() for s in checkpoints
    )
    log = next((exp / "logs").glob("train_*.log")).read_text()
    assert "step 75/125" in log and "lr 0.0001" in log and "step 76/125" in log and "lr 1e-05" in log
    # Non-terminal output: plain lines, no progress-bar fragments.
    assert "\r" not in result.stderr and "it/s]" not in result.stderr
    meta = json.loads((exp / "metadata.json").read_text())
    assert meta["status"] == "completed" and meta["packages"]["peft"]
    assert "train_file" in (exp / "config.yaml").read_text()
    for name in ("data_validation.json", "training_results.json"):
        assert (exp / "results" / name).is_file()
    assert list((exp / "tensorboard").glob("events.out.tfevents.*"))
    assert (exp / "plots" / "loss.png").is_file() and (exp / "report.md").is_file()

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2)
    ids = torch.tensor([[5, 6, 7, 8]])
    before = base(ids).logits
    model = PeftModel.from_pretrained(base, exp / "models" / "final_model")
    assert not torch.allclose(model(ids).logits, before)


def test_training_learns_the_synthetic_task(tmp_path, alpaca_file, tiny_qwen2):
    """Held-out loss and exact-match accuracy move well past the untrained model's."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.data.synthetic import generate_alpaca
    from paw.eval.generation import exact_match

    cfg = small_config(
        alpaca_file,
        tmp_path,
        max_steps=400,
        learning_rate=3e-3,
        schedule="cosine",
        warmup_steps=10,
        per_device_train_batch_size=8,
        logging_steps=50,
        eval_steps=400,
    )
    cfg["peft"] = {"r": 16, "alpha": 32}
    cfg["data"]["val_ratio"] = 0.1
    config = load_config(write_config(tmp_path / "c.yaml", cfg))
    result = run_training(config, name="learn")
    val_loss = result.report["evals"][-1]["eval_loss"]
    first_loss = result.report["steps"][0]["loss"]
    assert val_loss < 0.5 * first_loss, (first_loss, val_loss)

    heldout = generate_alpaca(90, seed=7)
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)
    base_acc, _ = exact_match(AutoModelForCausalLM.from_pretrained(tiny_qwen2), tokenizer, heldout)
    tuned = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_qwen2), result.experiment.final_model
    )
    tuned_acc, _ = exact_match(tuned, tokenizer, heldout)
    assert base_acc <= 0.02 and tuned_acc >= base_acc + 0.3, (base_acc, tuned_acc)


def test_gradient_accumulation_matches_the_big_batch(tmp_path, alpaca_file):
    """bs 2 x GA 4 gives the same loss and the same update as bs 8 (loss normalised by all target tokens)."""
    runs = {}
    for name, bs, ga in (("big", 8, 1), ("accum", 2, 4)):
        cfg = small_config(
            alpaca_file,
            tmp_path,
            max_steps=2,
            per_device_train_batch_size=bs,
            gradient_accumulation_steps=ga,
            optim="sgd",
            learning_rate=0.5,
            max_grad_norm=0.0,
        )
        runs[name] = run_training(load_config(write_config(tmp_path / f"{name}.yaml", cfg)), name=name)
    big, accum = runs["big"], runs["accum"]
    for a, b in zip(big.report["steps"], accum.report["steps"], strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    wa, wb = _adapter(big.experiment.dir), _adapter(accum.experiment.dir)
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-4, atol=1e-6)


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path, max_steps=30, save={"every": 5}, logging_steps=1)
    cfg["peft"]["dropout"] = 0.1  # the RNG state must be restored too
    path = write_config(tmp_path / "c.yaml", cfg)
    assert run_paw("train", str(path), "--name", "straight").returncode == 0

    proc = train_until(path, "killed", "checkpoint-10")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    meta = json.loads((tmp_path / "killed" / "metadata.json").read_text())
    assert meta["status"] == "running"  # killed hard: never looks completed
    assert not (tmp_path / "killed" / "models" / "final_model").exists()
    for ckpt in (tmp_path / "killed" / "checkpoints").glob("checkpoint-*"):
        assert (ckpt / "checkpoint_info.json").is_file(), f"{ckpt} is half-written"

    resumed = run_paw("train", "--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    assert json.loads((tmp_path / "killed" / "metadata.json").read_text())["status"] == "completed"
    report = json.loads((tmp_path / "killed" / "results" / "training_report.json").read_text())
    assert [s["step"] for s in report["steps"]] == list(range(1, 31))  # history from before the kill is kept
    a, b = _adapter(tmp_path / "straight"), _adapter(tmp_path / "killed")
    for key in a:  # same seed, same data order, same dropout masks: equal up to float noise
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def test_non_finite_loss_stops_cleanly(tmp_path, alpaca_file, tiny_qwen2):
    import shutil

    from safetensors.torch import save_file

    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_qwen2, broken)
    weights = load_file(broken / "model.safetensors")
    weights["model.norm.weight"][0] = float("nan")  # a corrupted checkpoint: the first loss is NaN
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    cfg = small_config(alpaca_file, tmp_path, max_steps=20)
    cfg["model"]["name_or_path"] = str(broken)
    result = run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", "nan")
    assert result.returncode == 1
    assert "loss became" in result.stderr and "Traceback" not in result.stderr
    meta = json.loads((tmp_path / "nan" / "metadata.json").read_text())
    assert meta["status"] == "failed" and "loss became" in meta["error"]


@pytest.mark.parametrize("peft", [{"method": "dora"}, {"use_rslora": True}], ids=["dora", "rslora"])
def test_dora_and_rslora_train_and_reload(tmp_path, alpaca_file, tiny_qwen2, peft):
    from peft import PeftConfig

    cfg = small_config(alpaca_file, tmp_path, max_steps=2)
    cfg["peft"].update(peft)
    result = run_training(load_config(write_config(tmp_path / "c.yaml", cfg)), name="m")
    saved = PeftConfig.from_pretrained(result.experiment.final_model)
    assert saved.use_dora == (peft.get("method") == "dora") and saved.use_rslora == bool(
        peft.get("use_rslora")
    )


def test_same_seed_same_loss_curve(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path, max_steps=4)
    cfg["peft"]["dropout"] = 0.1
    path = write_config(tmp_path / "c.yaml", cfg)
    a = run_training(load_config(path), name="a").report["steps"]
    b = run_training(load_config(path), name="b").report["steps"]
    assert [s["loss"] for s in a] == [s["loss"] for s in b]


def test_hosted_tracker_without_its_package_is_a_clear_error(tmp_path, alpaca_file):
    import importlib.util

    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    cfg = small_config(alpaca_file, tmp_path)
    cfg["tracking"] = {"backends": ["tensorboard", "wandb"]}
    result = run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", "w")
    assert result.returncode == 2 and "pip install 'paw[wandb]'" in result.stderr
    assert not (tmp_path / "w").exists()  # failed before anything was written
