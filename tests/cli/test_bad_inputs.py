"""Each bad input: one clear line naming the file/line/field, exit 2, no traceback, no experiment completed."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_paw, small_config, write_config


def _check(result, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr)
    err = result.stderr.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err
    return err


def _no_completed_experiment(root: Path) -> None:
    for meta in root.glob("*/metadata.json"):
        assert json.loads(meta.read_text())["status"] != "completed"


def _train(tmp_path, cfg, *extra):
    path = write_config(tmp_path / "c.yaml", cfg)
    result = run_paw("train", str(path), *extra)
    _no_completed_experiment(tmp_path)
    return result


def test_unknown_config_key_with_suggestion(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path)
    cfg["peft"]["rank"] = 4
    _check(_train(tmp_path, cfg), "c.yaml: peft.rank: unknown key (did you mean 'r'?)")


def test_wrong_type(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path, max_steps="ten")
    _check(_train(tmp_path, cfg), "training.max_steps", "'ten'")


def test_missing_data_file(tmp_path, alpaca_file):
    cfg = small_config(tmp_path / "missing.jsonl", tmp_path)
    _check(_train(tmp_path, cfg), "data.train_file: file not found", "missing.jsonl")


def test_malformed_jsonl_line(tmp_path, alpaca_file):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(alpaca_file.read_text().splitlines()[0] + "\n{not json}\n")
    _check(_train(tmp_path, small_config(bad, tmp_path)), f"{bad}:2: malformed JSON line")


def test_empty_dataset(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _check(_train(tmp_path, small_config(empty, tmp_path)), "empty.jsonl: the dataset is empty")


def test_all_examples_truncated_away(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path)
    cfg["data"]["max_length"] = 10
    _check(_train(tmp_path, cfg), "no usable training examples", "completion truncated away: 400")


def test_target_module_absent(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path)
    cfg["peft"]["target_modules"] = ["q_proj", "qkv_proj"]
    _check(_train(tmp_path, cfg), "peft.target_modules: 'qkv_proj' not found in qwen2", "q_proj")


def test_unknown_model_alias(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path)
    cfg["model"]["name_or_path"] = "qwen2.5-0.5-b"
    _check(_train(tmp_path, cfg), "unknown model alias 'qwen2.5-0.5-b' (did you mean 'qwen2.5-0.5b'?)")


@pytest.mark.parametrize("name", ["../x", "a/b", "/etc", ".."])
def test_experiment_name_cannot_escape_the_root(tmp_path, alpaca_file, name):
    _check(
        _train(tmp_path, small_config(alpaca_file, tmp_path), "--name", name),
        f"experiment name '{name}' is not allowed",
    )
    assert not (tmp_path.parent / "x").exists()


def test_existing_experiment_is_not_overwritten(tmp_path, alpaca_file):
    (tmp_path / "taken").mkdir()
    _check(_train(tmp_path, small_config(alpaca_file, tmp_path), "--name", "taken"), "already exists")


def test_debug_shows_the_traceback(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path)
    cfg["peft"]["rank"] = 4
    result = run_paw("--debug", "train", str(write_config(tmp_path / "c.yaml", cfg)))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_debug_keeps_the_original_cause_of_a_one_line_error(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{not json")
    plain = run_paw("eval", "--adapter", str(adapter), "--tasks", "arc_easy")
    assert plain.returncode == 2 and "Traceback" not in plain.stderr and "is not valid JSON" in plain.stderr
    debug = run_paw("--debug", "eval", "--adapter", str(adapter), "--tasks", "arc_easy")
    assert "JSONDecodeError" in debug.stderr and "During handling of the above exception" in debug.stderr
    assert "PawError" in debug.stderr


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_quantization_without_cuda_is_refused_before_loading(tmp_path, alpaca_file, bits):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = _train(
        tmp_path, small_config(alpaca_file, tmp_path), f"model.quantization={bits}", "--name", "q"
    )
    _check(result, f"model.quantization '{bits}' needs a CUDA GPU")
    assert not (tmp_path / "q").exists()


def test_qlora_config_is_nf4_with_double_quantization():
    from paw.models.quantization import bnb_config

    config = bnb_config("4bit")
    assert (config.load_in_4bit, config.bnb_4bit_quant_type, config.bnb_4bit_use_double_quant) == (
        True,
        "nf4",
        True,
    )
    assert bnb_config("8bit").load_in_8bit
