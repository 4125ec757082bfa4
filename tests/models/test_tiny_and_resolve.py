import pytest
import torch

from paw.errors import PawError
from paw.models.chat import end_of_turn_token, eos_warnings
from paw.models.resolve import resolve_model
from paw.models.tiny import build_tiny_model, families


@pytest.mark.parametrize("family", sorted(families()))
def test_tiny_family_builds_and_runs(family):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(f"paw-tiny/{family}")
    model = AutoModelForCausalLM.from_pretrained(resolved.location)
    tokenizer = AutoTokenizer.from_pretrained(resolved.location)
    assert model.config.model_type == families()[family]["model_type"]
    assert 50_000 < model.num_parameters() < 5_000_000
    ids = tokenizer("The opposite of hot is", return_tensors="pt")
    assert model(**ids).logits.shape[-1] == len(tokenizer)
    assert tokenizer.chat_template


def test_tiny_build_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    a = load_file(build_tiny_model("llama", tmp_path / "a", seed=3) / "model.safetensors")
    b = load_file(build_tiny_model("llama", tmp_path / "b", seed=3) / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_qwen_style_eos_is_not_the_end_of_turn_token(tiny_qwen2):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)
    assert end_of_turn_token(tokenizer) == "<|im_end|>"
    warnings = eos_warnings(tokenizer, uses_chat_template=True)
    assert (
        len(warnings) == 1
        and "'<|endoftext|>' is not the chat template's end-of-turn token '<|im_end|>'" in warnings[0]
    )
    assert eos_warnings(tokenizer, uses_chat_template=False) == []


def test_alias_prefers_local_copy(tmp_path):
    assert resolve_model("qwen2.5-0.5b").location == "Qwen/Qwen2.5-0.5B"
    (tmp_path / "Qwen2.5-0.5B").mkdir()
    (tmp_path / "Qwen2.5-0.5B" / "config.json").write_text("{}")
    assert resolve_model("qwen2.5-0.5b", models_dir=str(tmp_path)).location == str(tmp_path / "Qwen2.5-0.5B")


def test_unknown_alias_and_tiny_family_suggest():
    with pytest.raises(
        PawError, match=r"unknown model alias 'qwen2.5-05b' \(did you mean 'qwen2.5-0.5b'\?\)"
    ):
        resolve_model("qwen2.5-05b")
    with pytest.raises(PawError, match=r"unknown tiny model 'paw-tiny/lama' \(did you mean 'llama'\?\)"):
        resolve_model("paw-tiny/lama")
    with pytest.raises(PawError, match="directory './nope' does not exist"):
        resolve_model("./nope")


def test_gemma2_gets_eager_attention():
    from paw.models.load import LoadOptions, load_causal_lm

    model = load_causal_lm(resolve_model("paw-tiny/gemma2"), LoadOptions(attn_implementation="sdpa"))
    assert model.config._attn_implementation == "eager"
