"""DPO, KTO and GRPO end to end on the tiny Qwen2 model: each learns what its data rewards, resumes exactly, and
writes an adapter plain peft loads."""

import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from paw.config.loader import load_config
from paw.data.synthetic import generate_alpaca, write_jsonl
from paw.data.synthetic_preference import generate_kto, generate_preference_pairs, generate_prompts
from paw.train.recipe import run_training
from tests.conftest import run_paw, train_until, write_config

pytestmark = pytest.mark.slow


def _config(train: Path, root: Path, objective: str, **training) -> dict:
    return {
        "model": {"name_or_path": "paw-tiny/qwen2"},
        "data": {"train_file": str(train), "max_length": 96},
        "training": {"objective": objective, "per_device_train_batch_size": 8, **training},
        "experiment": {"root": str(root)},
    }


def _run(tmp_path: Path, name: str, config: dict):
    return run_training(load_config(write_config(tmp_path / f"{name}.yaml", config)), name=name)


def _completion_logps(model, examples: list[dict], key: str) -> torch.Tensor:
    """Σ log p(completion | prompt) per example."""
    sums = []
    for e in examples:
        ids = torch.tensor([e["prompt_ids"] + e[key]])
        with torch.no_grad():
            logp = torch.log_softmax(model(ids).logits[0, :-1].float(), dim=-1)
        targets = ids[0, 1:]
        sums.append(logp[torch.arange(len(targets)), targets][len(e["prompt_ids"]) - 1 :].sum())
    return torch.stack(sums)


def test_dpo_prefers_the_chosen_completion_on_held_out_pairs(tmp_path, tiny_qwen2):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.data.preference import PAIRED, build_preference_data
    from paw.data.sft import SftDataOptions

    train = write_jsonl(generate_preference_pairs(400, seed=0), tmp_path / "pairs.jsonl")
    held_out = write_jsonl(generate_preference_pairs(96, seed=1), tmp_path / "held_out.jsonl")
    cfg = _config(train, tmp_path, "dpo", max_steps=40, learning_rate=2e-2, eval_steps=40)
    cfg["data"]["val_file"] = str(held_out)
    cfg["preference"] = {"beta": 0.5}
    result = _run(tmp_path, "dpo", cfg)

    final = result.report["evals"][-1]
    assert final["eval_rewards/accuracies"] >= 0.65, final  # chance: 0.5 (and 0 before training: all ties)
    assert {"rewards/accuracies", "rewards/margins"} <= set(result.report["steps"][-1])
    exp = result.experiment
    assert (exp.plots / "objective.png").is_file()
    assert "rewards/accuracies" in next(exp.logs.glob("train_*.log")).read_text()

    # The same measure, computed here: the implicit reward β·(log π − log π_ref) ranks chosen over rejected.
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)
    pairs = build_preference_data(SftDataOptions(str(held_out)), tokenizer, PAIRED).train.examples
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_qwen2), exp.final_model
    ).eval()
    assert not (exp.final_model / "ref").exists()
    with model.disable_adapter():
        ref = {k: _completion_logps(model, pairs, k) for k in ("chosen_ids", "rejected_ids")}
    policy = {k: _completion_logps(model, pairs, k) for k in ("chosen_ids", "rejected_ids")}
    margin = (policy["chosen_ids"] - ref["chosen_ids"]) - (policy["rejected_ids"] - ref["rejected_ids"])
    assert (margin > 0).float().mean() >= 0.65


def test_dpo_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path):
    """Killed hard after its first checkpoint, resumed: the same per-step margins and final weights."""
    train = write_jsonl(generate_preference_pairs(200, seed=0), tmp_path / "pairs.jsonl")
    cfg = _config(
        train, tmp_path, "dpo", max_steps=12, learning_rate=5e-3, save={"every": 4}, logging_steps=1
    )
    path = write_config(tmp_path / "c.yaml", cfg)
    _run(tmp_path, "straight", cfg)  # in this process: the recipe the CLI runs

    proc = train_until(path, "killed", "checkpoint-4")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    resumed = run_paw("train", "--resume", str(tmp_path / "killed"))
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming from" in resumed.stderr
    reports = [
        json.loads((tmp_path / n / "results" / "training_report.json").read_text())
        for n in ("straight", "killed")
    ]
    assert [s["step"] for s in reports[1]["steps"]] == list(range(1, 13))
    for a, b in zip(*(r["steps"] for r in reports), strict=True):
        assert a["rewards/margins"] == pytest.approx(b["rewards/margins"], rel=1e-4, abs=1e-6)
    weights = [
        load_file(tmp_path / n / "models" / "final_model" / "adapter_model.safetensors")
        for n in ("straight", "killed")
    ]
    for key in weights[0]:
        torch.testing.assert_close(weights[0][key], weights[1][key], rtol=1e-5, atol=1e-6)


def test_kto_separates_desirable_from_undesirable(tmp_path, tiny_qwen2):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    train = write_jsonl(generate_kto(400, seed=0), tmp_path / "kto.jsonl")
    cfg = _config(train, tmp_path, "kto", max_steps=30, learning_rate=2e-2, eval_steps=30)
    cfg["data"]["val_file"] = str(write_jsonl(generate_kto(64, seed=1), tmp_path / "held_out.jsonl"))
    cfg["preference"] = {"beta": 0.5}
    result = _run(tmp_path, "kto", cfg)
    final = result.report["evals"][-1]
    assert final["eval_rewards/margins"] > 1.0, final
    assert "kl" in result.report["steps"][-1]
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_qwen2), result.experiment.final_model)


@pytest.mark.parametrize(("objective", "beta"), [("orpo", 0.5), ("simpo", 2.0)])
def test_reference_free_objectives_widen_the_held_out_margin(tmp_path, objective, beta):
    """ORPO and SimPO (TRL's experimental trainers): no reference, so the rewards are the policy's own scaled
    log-probabilities; training widens their held-out margin and ranks chosen first."""
    train = write_jsonl(generate_preference_pairs(400, seed=0), tmp_path / "pairs.jsonl")
    cfg = _config(
        train, tmp_path, objective, max_steps=20, learning_rate=2e-2, eval_steps=20, eval_on_start=True
    )
    cfg["data"]["val_file"] = str(
        write_jsonl(generate_preference_pairs(96, seed=1), tmp_path / "held_out.jsonl")
    )
    cfg["preference"] = {"beta": beta}
    result = _run(tmp_path, objective, cfg)
    before, after = result.report["evals"][0], result.report["evals"][-1]
    assert (before["step"], after["step"]) == (0, 20)
    assert after["eval_rewards/margins"] > before["eval_rewards/margins"] + 0.2, (before, after)
    assert after["eval_rewards/accuracies"] >= 0.65
    assert result.report["tokens_per_s"]  # their chosen_/rejected_ batches are counted too


def _answers_in_kind(adapter: Path, rows: list[dict]) -> float:
    """Greedy completions on held-out prompts: the fraction that answers in the asked kind."""
    from paw.infer.api import infer
    from paw.infer.inputs import InferInput
    from paw.models.generate import Sampling

    inputs = [InferInput(instruction=r["instruction"], input=r["input"]) for r in rows]
    outputs = infer(inputs, None, str(adapter), Sampling(max_new_tokens=8), template="alpaca")["results"]
    said = [o["output"].strip().lower().rstrip(".") for o in outputs]
    return sum(s in r["valid_answers"] for s, r in zip(said, rows, strict=True)) / len(rows)


def test_grpo_raises_the_verifiable_reward_on_held_out_prompts(tmp_path):
    """SFT for 10 steps (the answer format, not yet which kind of answer each question asks for), then GRPO with
    an exact-match reward on the answers of the asked kind: greedy held-out reward goes up."""
    sft_cfg = _config(write_jsonl(generate_alpaca(400, seed=0), tmp_path / "sft.jsonl"), tmp_path, "sft")
    sft_cfg["training"] |= {"max_steps": 10, "learning_rate": 1e-2}
    sft_cfg["peft"] = {"r": 16, "alpha": 16, "target_modules": "all-linear"}
    start = _run(tmp_path, "sft", sft_cfg).experiment.final_model

    prompts = write_jsonl(generate_prompts(400, seed=5), tmp_path / "prompts.jsonl")
    cfg = _config(prompts, tmp_path, "grpo", max_steps=40, learning_rate=5e-3, per_device_train_batch_size=32)
    cfg["training"]["save"] = {"every": 20}
    cfg["peft"] = {"init_adapter": str(start)}
    cfg["grpo"] = {"rewards": [{"kind": "exact", "field": "valid_answers"}], "max_completion_length": 8}
    result = _run(tmp_path, "grpo", cfg)

    held_out = generate_prompts(96, seed=6)
    before, after = (
        _answers_in_kind(start, held_out),
        _answers_in_kind(result.experiment.final_model, held_out),
    )
    assert after >= before + 0.15, (before, after)
    last = result.report["steps"][-1]
    assert {"reward", "kl", "rewards/exact_valid_answers/mean"} <= set(last)
    # The reference is the adapter as it started, a frozen copy that is never saved
    exp = result.experiment
    assert not (exp.final_model / "ref").exists()
    checkpoint = exp.checkpoints / "checkpoint-20"
    assert (checkpoint / "adapter_model.safetensors").is_file() and not (checkpoint / "ref").exists()


def test_a_bad_preference_row_is_one_clear_error_and_leaves_nothing(tmp_path):
    rows = generate_preference_pairs(5, seed=0)
    del rows[3]["rejected"]
    train = write_jsonl(rows, tmp_path / "pairs.jsonl")
    path = write_config(tmp_path / "c.yaml", _config(train, tmp_path / "exps", "dpo", max_steps=2))
    result = run_paw("train", str(path), "--name", "bad")
    assert result.returncode == 2
    assert "pairs.jsonl:4: missing field 'rejected'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "exps" / "bad").exists()
