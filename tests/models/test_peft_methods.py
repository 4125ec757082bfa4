"""Every PEFT method through the same checks: trains, saves safetensors, reloads with plain peft, changes the
model's outputs, and evaluates; options that do not fit a method are one clear error."""

import json

import pytest
import torch

from paw.config.loader import validate_dict
from paw.errors import PawError
from paw.eval.loglik import loglikelihoods
from paw.train.recipe import run_training
from tests.conftest import run_paw, small_config, write_config

METHODS = {
    "lora": ("LORA", {}),
    "dora": ("LORA", {}),
    "adalora": ("ADALORA", {"init_r": 8, "target_r": 4, "tinit": 2, "tfinal": 2}),
    "ia3": ("IA3", {}),
    "prefix": ("PREFIX_TUNING", {"num_virtual_tokens": 4}),
    "prompt": ("PROMPT_TUNING", {"num_virtual_tokens": 4, "prompt_init_text": "Which of these is a kind of"}),
}


def _config(train_file, root, method, **extra):
    cfg = small_config(train_file, root, max_steps=8, learning_rate=3e-2)
    cfg["peft"] = {"method": method, **extra}
    if method in ("lora", "dora", "adalora"):
        cfg["peft"].update(alpha=8, **({} if method == "adalora" else {"r": 4}))
    return cfg


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_method_trains_saves_reloads_and_evaluates(tmp_path, alpaca_file, tiny_qwen2, method):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from paw.eval.api import evaluate
    from paw.eval.runner import EvalOptions

    peft_type, extra = METHODS[method]
    result = run_training(
        validate_dict(_config(alpaca_file, tmp_path, method, **extra), "t.yaml"), name=method
    )
    steps = result.report["steps"]
    assert steps[-1]["step"] == 8 and all(s["loss"] is not None for s in steps)
    adapter = result.experiment.final_model
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["peft_type"] == peft_type
    assert (adapter / "adapter_model.safetensors").is_file() and not list(adapter.glob("*.bin"))

    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2).eval()
    with torch.no_grad():
        before = base(input_ids=ids).logits
        tuned = PeftModel.from_pretrained(base, str(adapter)).eval()
        after = tuned(input_ids=ids).logits[:, -ids.shape[1] :]  # prompt tuning prepends virtual positions
    assert not torch.allclose(before, after, atol=1e-4), f"{method} adapter changes nothing"

    from paw.data.builtin import resolve_data_file

    scores = evaluate(
        "arc_easy",
        model="paw-tiny/qwen2",
        adapter=str(adapter),
        data_files={"arc_easy": str(resolve_data_file("paw-synth/arc_easy"))},
        options=EvalOptions(limit=8, batch_size=4),
    )
    assert scores["tasks"]["arc_easy"]["n"] == 8


@pytest.mark.slow
def test_prompt_tuned_scores_do_not_depend_on_batch_size(tmp_path, alpaca_file, tiny_qwen2):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, extra = METHODS["prompt"]
    result = run_training(
        validate_dict(_config(alpaca_file, tmp_path, "prompt", **extra), "t.yaml"), name="p"
    )
    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)
    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_qwen2), str(result.experiment.final_model)
    )
    requests = [
        ("Question: Which of these is a kind of fruit?\nAnswer:", f" {w}")
        for w in ("apple", "car", "a red plum")
    ]
    groups = [[0, 1, 2]]
    one, _ = loglikelihoods(model, tokenizer, requests, groups, batch_size=1)
    three, _ = loglikelihoods(model, tokenizer, requests, groups, batch_size=3)
    assert [s.loglik for s in one] == pytest.approx([s.loglik for s in three], abs=1e-4)
    # the first request by hand: the continuation's log-probabilities after the 4 virtual positions
    ctx = tokenizer(requests[0][0])["input_ids"]
    full = tokenizer(requests[0][0] + requests[0][1])["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([full])).logits[0, 4:]
    lp = torch.log_softmax(logits.float(), -1)
    by_hand = sum(lp[k - 1, full[k]].item() for k in range(len(ctx), len(full)))
    assert one[0].loglik == pytest.approx(by_hand, abs=1e-4)


@pytest.mark.parametrize(
    ("peft", "model", "message"),
    [
        (
            {"method": "prefix", "target_modules": ["q_proj"]},
            {},
            "peft.target_modules: does not apply to prefix tuning",
        ),
        ({"method": "prompt", "r": 16}, {}, "peft.r: does not apply to prompt tuning"),
        (
            {"method": "ia3", "use_dora": True},
            {},
            "peft.use_dora: does not apply to IA3 .*option of lora, dora",
        ),
        ({"method": "adalora", "r": 16}, {}, "peft.r: does not apply to AdaLoRA .*ranks are peft.init_r and"),
        ({"method": "prompt", "rank": 4}, {}, "peft.rank: unknown key"),
        (
            {"method": "lorra"},
            {},
            "peft.method: 'lorra' is unknown \\(did you mean 'lora'\\?\\); choose from",
        ),
        (
            {"method": "lora", "prompt_init_text": "x"},
            {},
            "peft.prompt_init_text: does not apply to LoRA .*option of prompt",
        ),
        (
            {"method": "adalora", "init_r": 4, "target_r": 8},
            {},
            r"peft.target_r: \(8\) cannot exceed peft.init_r",
        ),
        (
            {"method": "ia3", "target_modules": ["k_proj", "v_proj"], "feedforward_modules": ["down_proj"]},
            {},
            "peft.feedforward_modules: down_proj must also be in peft.target_modules",
        ),
        (
            {"method": "adalora", "tinit": 4, "tfinal": 2},
            {},
            r"peft.tinit: tinit \(4\) \+ tfinal \(2\) must be below the run's 6 steps",
        ),
        (
            {"method": "prefix"},
            {"gradient_checkpointing": True},
            "prefix tuning does not work with model.gradient_checkpointing",
        ),
    ],
)
def test_options_that_do_not_fit_the_method_are_config_errors(tmp_path, peft, model, message):
    cfg = small_config(tmp_path / "t.jsonl", tmp_path)
    cfg["peft"] = peft
    cfg["model"].update(model)
    with pytest.raises(PawError, match=message):
        validate_dict(cfg, "t.yaml")


def test_adalora_needs_max_steps(tmp_path):
    cfg = small_config(tmp_path / "t.jsonl", tmp_path)
    cfg["peft"] = {"method": "adalora"}
    del cfg["training"]["max_steps"]
    with pytest.raises(PawError, match="training.max_steps: adalora plans its rank budget"):
        validate_dict(cfg, "t.yaml")


def test_ia3_without_default_targets_for_the_model_says_what_to_set(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path)
    cfg["model"]["name_or_path"] = "paw-tiny/phi3"
    cfg["peft"] = {"method": "ia3"}
    result = run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--validate-only")
    assert result.returncode == 2, result.stderr
    assert "peft.method ia3 has no default target modules for phi3; set peft.target_modules" in result.stderr


def test_a_method_registered_in_one_module_runs_end_to_end(tmp_path, alpaca_file, tiny_qwen2, monkeypatch):
    """A test-only method (tests/models/loha_method.py) with one registry line: its options are checked as a
    section of their own, it trains, and its adapter loads in plain peft and changes the model's outputs."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from paw.config.peft_methods import REGISTRY

    monkeypatch.setitem(REGISTRY, "loha", "tests.models.loha_method:LoHa")
    with pytest.raises(PawError, match="peft.use_dora: does not apply to LoHa"):
        validate_dict(_config(alpaca_file, tmp_path, "loha", use_dora=True), "t.yaml")
    config = validate_dict(
        _config(alpaca_file, tmp_path, "loha", r=2, target_modules=["q_proj", "v_proj"]), "t.yaml"
    )
    assert config.peft.summary() == "loha r=2 alpha=4 targets=q_proj, v_proj"
    result = run_training(config, name="loha")
    assert result.report["steps"][-1]["step"] == 8
    adapter = result.experiment.final_model
    assert json.loads((adapter / "adapter_config.json").read_text())["peft_type"] == "LOHA"

    ids = torch.tensor([[5, 6, 7, 8, 9, 10]])
    base = AutoModelForCausalLM.from_pretrained(tiny_qwen2).eval()
    with torch.no_grad():
        before = base(input_ids=ids).logits
        after = PeftModel.from_pretrained(base, str(adapter)).eval()(input_ids=ids).logits
    assert not torch.allclose(before, after, atol=1e-4)
