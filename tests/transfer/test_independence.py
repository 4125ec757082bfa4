"""No two built-in models share weights unless one is derived from the other: a LoRA moved between any two
distinct families, tiny or stand-in, is rejected by the similarity gate on every unit (nothing is written)."""

import json
from itertools import combinations

import pytest

from paw.errors import PawError
from paw.transfer.api import transfer

TINY = ["paw-tiny/qwen2", "paw-tiny/llama", "paw-tiny/gemma2", "paw-tiny/phi3"]
# One depth-cut stand-in per published family (the smallest of each), each with its real tokenizer.
STAND_INS = [
    "paw-shape/qwen2.5-0.5b@1",
    "paw-shape/llama-3.2-1b@1",
    "paw-shape/phi-3.5-mini@1",
    "paw-shape/gemma-2-2b@1",
]


def random_lora(model_name: str, out):
    """An r=4 all-linear LoRA with random A and B (a non-zero update on every unit) for ``model_name``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from paw.models.resolve import resolve_model

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(resolve_model(model_name).location, dtype=torch.float32)
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", init_lora_weights=False)
    )
    peft_model.save_pretrained(out)
    config = json.loads((out / "adapter_config.json").read_text())
    (out / "adapter_config.json").write_text(json.dumps({**config, "base_model_name_or_path": model_name}))
    return out


def assert_only_a_failed_report(output):
    """A failed transfer leaves its report (status failed, per-unit reasons) and no adapter files."""
    assert sorted(p.name for p in output.iterdir()) == ["transfer_report.json", "transfer_report.md"]
    assert json.loads((output / "transfer_report.json").read_text())["status"] == "failed"
    assert "failed: no unit passed" in (output / "transfer_report.md").read_text()


@pytest.mark.parametrize(("source", "target"), list(combinations(TINY, 2)))
def test_distinct_tiny_families_share_nothing(tmp_path, source, target):
    adapter = random_lora(source, tmp_path / "adapter")
    with pytest.raises(PawError, match=r"no module passed the transfer checks.*: 14 of 14 units skipped"):
        transfer(adapter, target, tmp_path / "moved")
    assert_only_a_failed_report(tmp_path / "moved")


@pytest.mark.slow
@pytest.mark.parametrize(("source", "target"), list(combinations(STAND_INS, 2)))
def test_distinct_stand_in_families_share_nothing(real_tokenizers, tmp_path, source, target):
    adapter = random_lora(source, tmp_path / "adapter")
    with pytest.raises(PawError, match=r"no module passed the transfer checks.*: 7 of 7 units skipped"):
        transfer(adapter, target, tmp_path / "moved")
    assert_only_a_failed_report(tmp_path / "moved")
