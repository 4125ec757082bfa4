"""paw export: a trained adapter to GGUF (llama.cpp's own converters), an Ollama Modelfile, or merged weights.

GGUF conversion needs a tokenizer llama.cpp knows (it recognises a BPE tokenizer by hashing its output), so these
tests train on a narrow model (64 wide, 2 layers) with the real Qwen2 tokenizer and chat template of the Qwen2.5
stand-in, fetched by `make tokenizers`; paw-tiny's 762-token tokenizer is refused with llama.cpp's own reason.
"""

import json

import pytest
import torch

from tests.conftest import run_paw, small_config, write_config


@pytest.fixture(scope="module")
def narrow_qwen2(real_tokenizers, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    from paw.models.shape import stand_in_config, stand_in_tokenizer

    tokenizer = stand_in_tokenizer("qwen2.5-0.5b")
    config = stand_in_config("qwen2.5-0.5b", 2, tokenizer)
    config.update(
        {"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 4, "num_key_value_heads": 2}
    )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    out = tmp_path_factory.mktemp("narrow") / "narrow-qwen2"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def experiment(narrow_qwen2, tmp_path_factory):
    root = tmp_path_factory.mktemp("exp")
    rows = [{"instruction": f"Say the number {i}.", "output": f"{i}"} for i in range(40)]
    data = root / "train.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = small_config(data, root / "experiments", max_steps=4, learning_rate=5e-2)
    cfg["model"] = {"name_or_path": str(narrow_qwen2), "dtype": "fp32"}
    cfg["data"]["prompt_template"] = "chat"
    cfg["peft"] = {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]}
    done = run_paw("train", str(write_config(root / "c.yaml", cfg)), "--name", "narrow", cwd=root)
    assert done.returncode == 0, done.stderr
    return root / "experiments" / "narrow"


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits.float()


@pytest.mark.slow
def test_gguf_export_reads_back_with_the_merged_models_logits(experiment, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "gguf"
    done = run_paw("export", str(experiment), "--format", "gguf", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["adapter-f16.gguf", "export_info.json", "model-f16.gguf"]
    info = json.loads((out / "export_info.json").read_text())
    assert info["converter"].startswith("llama.cpp from llama-cpp-python==")

    from paw import api

    merged_dir = tmp_path / "merged"
    assert api.export(experiment, "merged", merged_dir)["format"] == "merged"  # the Python API, same function
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32).eval()
    from_gguf = AutoModelForCausalLM.from_pretrained(
        out, gguf_file="model-f16.gguf", dtype=torch.float32
    ).eval()
    tokenizer = AutoTokenizer.from_pretrained(merged_dir)
    ids = torch.tensor([tokenizer("Say the number 7. The quick brown fox")["input_ids"]])
    want, got = _logits(merged, ids), _logits(from_gguf, ids)
    assert (want - got).abs().max().item() < 5e-3 * want.abs().max().item()  # f16 weights
    gguf_tokenizer = AutoTokenizer.from_pretrained(out, gguf_file="model-f16.gguf")
    assert gguf_tokenizer("Say the number 7.")["input_ids"] == ids[0, :6].tolist()
    assert "<|im_start|>" in (gguf_tokenizer.chat_template or "")  # the chat template travels in the metadata
    assert gguf_tokenizer.eos_token == tokenizer.eos_token  # and the stop token

    q8 = tmp_path / "q8"
    assert api.export(experiment, "gguf", q8, outtype="q8_0")["files"].keys() >= {"model-q8_0.gguf"}
    from_q8 = AutoModelForCausalLM.from_pretrained(
        q8, gguf_file="model-q8_0.gguf", dtype=torch.float32
    ).eval()
    assert (want - _logits(from_q8, ids)).abs().max().item() < 5e-2 * want.abs().max().item()  # 8-bit blocks


@pytest.mark.llama_cpp
def test_llama_cpp_generates_what_paw_generates(experiment, tmp_path):
    """Greedy generation through llama.cpp itself (llama-cpp-python built from its source archive: `make
    test-llama-cpp`) equals paw's on the adapter, token for token; an f32 GGUF so both run the same weights."""
    from llama_cpp import Llama

    from paw.models.generate import greedy
    from paw.models.loaded import load_for_eval

    out = tmp_path / "gguf"
    done = run_paw("export", str(experiment), "--format", "gguf", "--outtype", "f32", "--output", str(out))
    assert done.returncode == 0, done.stderr
    loaded = load_for_eval(None, str(experiment / "models" / "final_model"), dtype="fp32")
    llm = Llama(model_path=str(out / "model-f32.gguf"), n_ctx=256, n_threads=1, verbose=False)
    prompts = ["Say the number 7.", "The quick brown fox", "<|im_start|>user\nSay the number 12.<|im_end|>\n"]
    for prompt in prompts:
        ids = loaded.tokenizer(prompt)["input_ids"]
        eos = loaded.tokenizer.eos_token_id
        ours = greedy(loaded.model, loaded.tokenizer, [ids], 1, 24, [eos], [], eos)[0]
        theirs = []
        for token in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
            if token == loaded.tokenizer.eos_token_id or len(theirs) == 24:
                break
            theirs.append(token)
        assert theirs == ours, prompt
        assert len(ours) == 24  # no early stop: every step compared


@pytest.mark.slow
def test_ollama_export_writes_a_modelfile_with_the_trained_template(experiment, tmp_path):
    out = tmp_path / "ollama"
    done = run_paw("export", str(experiment), "--format", "ollama", "--output", str(out))
    assert done.returncode == 0, done.stderr
    modelfile = (out / "Modelfile").read_text()
    assert modelfile.startswith("FROM ./model-f16.gguf\n")
    assert "<|im_start|>user\n{{ .Prompt }}<|im_end|>" in modelfile  # ChatML, as the adapter was trained
    assert 'PARAMETER stop "<|im_end|>"' in modelfile
    assert (out / "model-f16.gguf").stat().st_size > 0
    assert f"ollama create ollama -f {out / 'Modelfile'}" in done.stderr


def test_refusals_are_one_line_and_leave_nothing(tmp_path, alpaca_file):
    from paw.config.loader import validate_dict
    from paw.train.recipe import run_training
    from tests.models.test_peft_methods import _config  # a prompt-tuned adapter: nothing to merge

    cfg = _config(alpaca_file, tmp_path, "prompt", num_virtual_tokens=4)
    cfg["training"]["max_steps"] = 2
    adapter = run_training(validate_dict(cfg, "t.yaml"), name="p").experiment.final_model
    out = tmp_path / "exports" / "gguf"
    out.parent.mkdir()
    cases = [
        (["--format", "gguf"], "is a PREFIX_TUNING adapter|is a PROMPT_TUNING adapter"),
        (["--format", "onnx"], "--format must be one of gguf, ollama, vllm, merged"),
        (["--format", "gguf", "--outtype", "q4_k"], "--outtype must be one of f32, f16, bf16, q8_0"),
    ]
    for args, message in cases:
        done = run_paw("export", str(adapter), *args, "--output", str(out))
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
        assert any(part in done.stderr for part in message.split("|")), done.stderr
        assert not out.exists() and not list(out.parent.glob(".*"))  # no staging left behind
    lora = run_training(validate_dict(_config(alpaca_file, tmp_path, "lora"), "t.yaml"), name="l")
    done = run_paw("export", str(lora.experiment.final_model), "--format", "gguf", "--output", str(out))
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "BPE pre-tokenizer was not recognized" in done.stderr and "published model families" in done.stderr
    assert not out.exists() and not list(out.parent.glob(".*"))
    done = run_paw("export", str(tmp_path / "nowhere"), "--format", "merged", "--output", str(out))
    assert done.returncode == 2 and "paw export: no adapter dir or experiment at" in done.stderr


def _peft_adapter(family, out, config):
    """An adapter made by peft itself on a tiny model (random B, so it changes the outputs)."""
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from paw.models.tiny import tiny_model_dir

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir(f"paw-tiny/{family}"))
    get_peft_model(model, config).save_pretrained(out)
    return out


def test_vllm_export_checks_what_vllm_refuses_and_prints_the_serve_command(tmp_path):
    from peft import IA3Config, LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM

    from paw.models.tiny import tiny_model_dir

    good = _peft_adapter("qwen2", tmp_path / "r32", LoraConfig(r=32, target_modules=["q_proj", "v_proj"]))
    out = tmp_path / "vllm"
    done = run_paw("export", str(good), "--format", "vllm", "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert (
        f"--enable-lora --lora-modules vllm={out} --max-lora-rank 32" in done.stderr
    )  # above vLLM's default 16
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir("paw-tiny/qwen2"))
    PeftModel.from_pretrained(base, str(out))  # still a plain peft adapter
    assert json.loads((out / "export_info.json").read_text())["max_lora_rank"] == 32

    phi3 = _peft_adapter("phi3", tmp_path / "phi3", LoraConfig(r=4, target_modules=["qkv_proj", "o_proj"]))
    done = run_paw("export", str(phi3), "--format", "vllm", "--output", str(tmp_path / "phi3-vllm"))
    assert done.returncode == 0, done.stderr
    targets = json.loads((tmp_path / "phi3-vllm" / "adapter_config.json").read_text())["target_modules"]
    leaves = {t.rsplit(".", 1)[-1] for t in targets}
    assert leaves == {"q_proj", "k_proj", "v_proj", "o_proj"}  # qkv_proj split into its parts

    refused = {
        "dora": (LoraConfig(r=4, target_modules=["q_proj"], use_dora=True), "does not serve DoRA"),
        "bias": (LoraConfig(r=4, target_modules=["q_proj"], bias="all"), "trains biases"),
        "saved": (
            LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["lm_head"]),
            "trains whole modules",
        ),
        "ia3": (
            IA3Config(target_modules=["k_proj", "down_proj"], feedforward_modules=["down_proj"]),
            "is IA3",
        ),
    }
    for name, (config, message) in refused.items():
        adapter = _peft_adapter("qwen2", tmp_path / name, config)
        target = tmp_path / f"{name}-vllm"
        done = run_paw("export", str(adapter), "--format", "vllm", "--output", str(target))
        assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert message in done.stderr and "--format merged" in done.stderr and not target.exists()
