"""Stand-ins of published models: exact parameter counts, depth cuts, real tokenizers, chat templates, errors."""

import json

import pytest

from paw.errors import PawError
from paw.models import shape
from paw.models.resolve import resolve_model


@pytest.mark.parametrize("base", list(shape.shapes()))
def test_full_depth_config_has_the_published_parameter_count(real_tokenizers, base):
    spec = shape.shapes()[base]
    tokenizer = shape.stand_in_tokenizer(base)
    config = shape.stand_in_config(base, spec["config"]["num_hidden_layers"], tokenizer)
    assert shape.parameter_count(config) == spec["parameters"]
    assert len(tokenizer) <= config.vocab_size
    rendered = tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}], tokenize=False)
    assert "Hi" in rendered
    stops = [tokenizer.convert_tokens_to_ids(t) for t in spec["stop"]]
    assert config.eos_token_id in stops and len(set(stops)) == len(stops) == 2


def test_depth_cut_stand_in_builds_with_real_tokenizer_and_bf16_weights(real_tokenizers):
    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoTokenizer

    resolved = resolve_model("paw-shape/qwen2.5-0.5b@1")
    assert resolved.kind == "shape"
    config = AutoConfig.from_pretrained(resolved.location)
    assert (config.num_hidden_layers, config.hidden_size, config.vocab_size) == (1, 896, 151936)
    assert config.tie_word_embeddings and config.rope_parameters["rope_theta"] == 1e6
    with safe_open(f"{resolved.location}/model.safetensors", "pt") as weights:
        q = weights.get_tensor("model.layers.0.self_attn.q_proj.weight")
    assert q.dtype == torch.bfloat16 and abs(q.float().std().item() - 0.02) < 0.002  # initializer_range
    tokenizer = AutoTokenizer.from_pretrained(resolved.location)
    assert tokenizer.eos_token == "<|endoftext|>" and tokenizer.bos_token is None
    record = json.loads((shape.stand_in_dir("paw-shape/qwen2.5-0.5b@1") / shape.RECORD).read_text())
    assert (
        record["layers"] == 1
        and record["published_layers"] == 24
        and record["mirrors"] == "Qwen/Qwen2.5-0.5B"
    )


def test_every_stand_in_draws_its_own_weights():
    seeds = {shape.weight_seed(base, 0) for base in shape.shapes()}
    assert len(seeds) == len(shape.shapes())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("paw-shape/qwen2.5-0.6b", "unknown stand-in 'paw-shape/qwen2.5-0.6b'.*did you mean 'qwen2.5-0.5b'"),
        ("paw-shape/qwen2.5-0.5b@0", "from 1 to 24"),
        ("paw-shape/qwen2.5-0.5b@25", "from 1 to 24"),
        ("paw-shape/qwen2.5-0.5b@x", "from 1 to 24"),
    ],
)
def test_bad_stand_in_names_are_clear_errors(name, message):
    with pytest.raises(PawError, match=message):
        resolve_model(name, build_tiny=False)


def test_a_shape_too_large_for_the_machine_is_refused_before_allocating(
    real_tokenizers, monkeypatch, tmp_path
):
    monkeypatch.setattr(shape, "_available_bytes", lambda: 2**30)
    with pytest.raises(PawError, match=r"8.0B parameters .*Cut its depth, e.g. paw-shape/llama-3-8b@4"):
        shape.build_stand_in("llama-3-8b", 32, tmp_path / "out")
    assert not (tmp_path / "out").exists()
