"""paw merge (the merged model computes what base + adapter computes) and paw infer (single and batch)."""

import json
from pathlib import Path

import pytest
import torch

from paw.config.loader import validate_dict
from paw.train.recipe import run_training
from tests.conftest import run_paw, small_config

pytestmark = pytest.mark.slow
IDS = torch.tensor([[5, 6, 7, 8, 9, 10, 11]])


def _adapter(tmp_path, alpaca_file, name: str, **peft) -> str:
    cfg = small_config(alpaca_file, tmp_path, max_steps=6, learning_rate=3e-2)
    cfg["peft"] = peft
    result = run_training(validate_dict(cfg, "t.yaml"), name=name)
    return str(result.experiment.final_model)


@pytest.mark.parametrize(
    "peft",
    [{"method": "lora", "r": 4}, {"method": "dora", "r": 4}, {"method": "ia3"}],
    ids=lambda p: p["method"],
)
def test_merged_model_equals_base_plus_adapter(tmp_path, alpaca_file, tiny_qwen2, peft):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    adapter = _adapter(tmp_path, alpaca_file, peft["method"], **peft)
    result = run_paw("merge", "--adapter", adapter, "--output", str(tmp_path / "merged"))
    assert result.returncode == 0, result.stderr
    merged_dir = tmp_path / "merged"
    assert list(merged_dir.glob("*.safetensors")) and not list(merged_dir.glob("*.bin"))
    assert (merged_dir / "tokenizer_config.json").is_file() and (merged_dir / "paw_prompt.json").is_file()
    info = json.loads((merged_dir / "merge_info.json").read_text())
    assert info["adapter_type"] == ("IA3" if peft["method"] == "ia3" else "LORA")
    with torch.no_grad():
        reference = (
            PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_qwen2), adapter)
            .eval()(IDS)
            .logits
        )
        base = AutoModelForCausalLM.from_pretrained(tiny_qwen2).eval()(IDS).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()(IDS).logits
    assert not torch.allclose(reference, base, atol=1e-4)  # the adapter does something...
    torch.testing.assert_close(merged, reference, rtol=1e-4, atol=1e-4)  # ...and the merge keeps it


def test_merge_refuses_what_cannot_be_merged(tmp_path, alpaca_file):
    adapter = _adapter(tmp_path, alpaca_file, "lora", method="lora", r=4)
    wrong = run_paw(
        "merge", "--adapter", adapter, "--output", str(tmp_path / "m"), "--model", "paw-tiny/phi3"
    )
    assert wrong.returncode == 2 and "was trained on paw-tiny/qwen2" in wrong.stderr, wrong.stderr
    other = ["--output", str(tmp_path / "m"), "--model", "paw-tiny/phi3", "--other-base"]
    wrong = run_paw(
        "merge", "--adapter", adapter, *other
    )  # its own (qwen2) tokenizer would be saved with phi3
    assert wrong.returncode == 2 and "its tokenizer gives the special token '<|end|>'" in wrong.stderr
    bare = tmp_path / "bare"  # the weights alone: past the base and tokenizer checks, the modules do not fit
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (bare / name).write_bytes((Path(adapter) / name).read_bytes())
    wrong = run_paw("merge", "--adapter", str(bare), *other)
    assert wrong.returncode == 2 and "does not fit this base model" in wrong.stderr
    assert "Traceback" not in wrong.stderr and not (tmp_path / "m").exists()
    prompt = _adapter(tmp_path, alpaca_file, "prompt", method="prompt", num_virtual_tokens=4)
    virtual = run_paw("merge", "--adapter", prompt, "--output", str(tmp_path / "m"))
    assert virtual.returncode == 2 and "nothing to merge" in virtual.stderr
    (tmp_path / "taken").mkdir()
    taken = run_paw("merge", "--adapter", adapter, "--output", str(tmp_path / "taken"))
    assert taken.returncode == 2 and "already exists" in taken.stderr


def test_infer_single_and_batch(tmp_path, alpaca_file):
    adapter = _adapter(tmp_path, alpaca_file, "lora", method="lora", r=4)
    single = run_paw(
        "infer",
        "--adapter",
        adapter,
        "--input-text",
        "Name the category of the word.",
        "--max-new-tokens",
        "4",
    )
    assert single.returncode == 0, single.stderr
    assert "1 output(s), template alpaca" in single.stderr  # prompted as the adapter was trained

    inputs = tmp_path / "in.jsonl"
    inputs.write_text(
        '{"instruction": "Give the opposite of the word.", "input": "hot"}\n'
        '{"prompt": "Below is"}\n'
        '{"messages": [{"role": "user", "content": "hello"}]}\n'
    )
    out = tmp_path / "out.json"
    batch = run_paw(
        "infer",
        "--adapter",
        adapter,
        "--input-file",
        str(inputs),
        "--output-file",
        str(out),
        "--batch-size",
        "2",
    )
    assert batch.returncode == 0, batch.stderr
    results = json.loads(out.read_text())
    assert [r["input"] for r in results["results"]][0] == {
        "instruction": "Give the opposite of the word.",
        "input": "hot",
    }
    assert results["results"][0]["prompt"].endswith("### Response:\n")
    assert results["results"][2]["prompt"].startswith("<|im_start|>user")  # chat rows use the chat template
    sampled = run_paw(
        "infer", "--adapter", adapter, "--input-file", str(inputs), "--temperature", "0.8", "--top-p", "0.9"
    )
    assert sampled.returncode == 0, sampled.stderr


def test_infer_bad_inputs(tmp_path, alpaca_file):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\n{"prompt": \n')
    result = run_paw("infer", "--model", "paw-tiny/qwen2", "--input-file", str(bad))
    assert result.returncode == 2 and f"{bad}:2: invalid JSON" in result.stderr
    neither = run_paw("infer", "--model", "paw-tiny/qwen2")
    assert neither.returncode == 2 and "exactly one of --input-text" in neither.stderr


def test_phi3_adapter_exports_unfused_and_exact(tmp_path, alpaca_file):
    from safetensors.torch import load_file

    cfg = small_config(alpaca_file, tmp_path, max_steps=4, learning_rate=3e-2)
    cfg["model"]["name_or_path"] = "paw-tiny/phi3"
    cfg["peft"] = {"r": 4, "alpha": 8}
    adapter = run_training(validate_dict(cfg, "t.yaml"), name="phi3").experiment.final_model
    result = run_paw(
        "merge", "--adapter", str(adapter), "--output", str(tmp_path / "unfused"), "--unfused-adapter"
    )
    assert result.returncode == 0, result.stderr
    config = json.loads((tmp_path / "unfused" / "adapter_config.json").read_text())
    assert {m.rsplit(".", 1)[-1] for m in config["target_modules"]} == {
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    }
    fused, split = (
        load_file(adapter / "adapter_model.safetensors"),
        load_file(tmp_path / "unfused" / "adapter_model.safetensors"),
    )
    scale = 8 / 4
    key = "base_model.model.model.layers.0.self_attn"
    delta = scale * fused[f"{key}.qkv_proj.lora_B.weight"] @ fused[f"{key}.qkv_proj.lora_A.weight"]
    parts = [split[f"{key}.{k}_proj.lora_B.weight"] @ split[f"{key}.{k}_proj.lora_A.weight"] for k in "qkv"]
    torch.testing.assert_close(torch.cat(parts), delta, rtol=1e-5, atol=1e-6)
    again = run_paw(
        "merge", "--adapter", str(tmp_path / "unfused"), "--output", str(tmp_path / "x"), "--unfused-adapter"
    )
    assert again.returncode == 2 and "already unfused" in again.stderr
