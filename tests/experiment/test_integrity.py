"""What paw reads back is checked, and what it writes is portable: damaged checkpoints are skipped on resume,
damaged adapters are refused by every command before any model loads, files get the user's umask, and an adapter
names its base as the user did."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat

import pytest
from safetensors.torch import save_file

from paw.errors import PawError
from paw.models.adapter_files import check_adapter_dir
from paw.train import checkpoint as ckpt
from paw.utils.io import atomic_write_json
from tests.conftest import mc_task_files, run_paw, small_config, write_config


@pytest.fixture(scope="module")
def run(tmp_path_factory, alpaca_file):
    """A finished tiny run with checkpoints at steps 2, 4 and 6, written under umask 022."""
    from paw.config.loader import load_config
    from paw.train.recipe import run_training

    old = os.umask(0o022)
    try:
        root = tmp_path_factory.mktemp("runs")
        cfg = small_config(alpaca_file, root, max_steps=6, save={"every": 2})
        return run_training(load_config(write_config(root / "c.yaml", cfg)), name="r").experiment
    finally:
        os.umask(old)


def test_files_get_the_umask_and_no_staging_is_left(run):
    for path in run.dir.rglob("*"):
        if path.name == ".paw.lock":
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode & 0o044 == 0o044, f"{path} is {oct(mode)}: others cannot read it"
    assert not (run.checkpoints / ".staging").exists()


def test_the_adapter_names_its_base_as_the_user_did(run):
    config = json.loads((run.final_model / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "paw-tiny/qwen2"  # not the cache dir it was built into


def test_a_damaged_checkpoint_is_found_and_resume_falls_back(run, tmp_path):
    root = tmp_path / "checkpoints"
    shutil.copytree(run.checkpoints, root)
    assert ckpt.latest_intact(root) == (root / "checkpoint-6", [])
    weights = root / "checkpoint-6" / "adapter_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # one flipped bit-pattern: same size, other bytes
    weights.write_bytes(bytes(data))
    (root / "checkpoint-4" / "optimizer.pt").write_bytes(b"")  # truncated
    found, skipped = ckpt.latest_intact(root)
    assert found == root / "checkpoint-2"
    assert skipped[0] == (
        root / "checkpoint-6",
        "adapter_model.safetensors differs from what was written (sha256)",
    )
    assert skipped[1][0] == root / "checkpoint-4" and "optimizer.pt has 0 bytes" in skipped[1][1]


def _broken(tmp_path, run, how: str):
    adapter = tmp_path / how
    shutil.copytree(run.final_model, adapter)
    weights = adapter / "adapter_model.safetensors"
    if how == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "empty":
        weights.write_bytes(b"")
    elif how == "garbage":
        weights.write_bytes(os.urandom(4096))
    elif how == "nan":
        from safetensors.torch import load_file

        tensors = load_file(str(weights))
        first = next(iter(tensors))
        tensors[first][0, 0] = float("nan")
        save_file(tensors, str(weights))
    elif how == "bad-json":
        (adapter / "adapter_config.json").write_text('{"peft_type": "LORA",')
    elif how == "pickle-only":
        weights.rename(adapter / "adapter_model.bin")
    return adapter


@pytest.mark.parametrize(
    "how, says",
    [
        ("truncated", "is not a readable safetensors file"),
        ("empty", "is empty"),
        ("garbage", "is not a readable safetensors file"),
        ("nan", "holds NaN or infinite values"),
        ("bad-json", "adapter_config.json is not valid JSON"),
        ("pickle-only", "adapter_model.bin (a pickle)"),
    ],
)
def test_every_kind_of_damaged_adapter_is_one_clear_error(run, tmp_path, how, says):
    adapter = _broken(tmp_path, run, how)
    with pytest.raises(PawError, match=re.escape(says)) as err:
        check_adapter_dir(adapter)
    assert str(adapter) in str(err.value)


def test_commands_that_load_an_adapter_refuse_a_damaged_one(run, tmp_path):
    adapter = _broken(tmp_path, run, "truncated")
    files = mc_task_files(tmp_path, ["arc_easy"], 4)
    commands = {
        "eval": ["eval", "--adapter", str(adapter), "--tasks", "arc_easy", "--data-file", files["arc_easy"]],
        "merge": ["merge", "--adapter", str(adapter), "--output", str(tmp_path / "merged")],
        "transfer": [
            "transfer",
            "--adapter",
            str(adapter),
            "--target",
            "paw-tiny/qwen2",
            "--output",
            str(tmp_path / "t"),
        ],
    }
    for command, args in commands.items():
        done = run_paw(*args)
        assert done.returncode == 2, (command, done.stderr)
        assert "adapter_model.safetensors is not a readable safetensors file" in done.stderr, command
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "merged").exists() and not (tmp_path / "t").exists()


def test_atomic_writes_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        path = atomic_write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_eval_into_an_experiment_keeps_every_result_set(run, tmp_path):
    files = mc_task_files(tmp_path, ["arc_easy"], 12)
    args = ["eval", str(run.dir), "--tasks", "arc_easy", "--data-file", files["arc_easy"]]
    for extra in (["--limit", "4"], [], ["--limit", "6"]):
        done = run_paw(*args, *extra)
        assert done.returncode == 0, done.stderr
    sets = sorted((run.results / "eval").iterdir())
    assert len(sets) == 3 and all((s / "results.json").is_file() for s in sets)
    assert sorted(json.loads((s / "results.json").read_text())["tasks"]["arc_easy"]["n"] for s in sets) == [
        4,
        6,
        12,
    ]
    summary = json.loads((run.results / "eval_results.json").read_text())
    assert summary["tasks"]["arc_easy"]["n"] == 12 and summary["subset"] is False  # the full-data set
    assert (run.results / summary["source"] / "results.json").is_file()
    elsewhere = run_paw(*args, "--limit", "2", "--output", str(tmp_path / "elsewhere"))
    assert elsewhere.returncode == 0, elsewhere.stderr  # written outside: the experiment is not touched
    assert (tmp_path / "elsewhere" / "results.json").is_file() and len(
        list((run.results / "eval").iterdir())
    ) == 3
    assert json.loads((run.results / "eval_results.json").read_text()) == summary


def test_outputs_are_checked_before_any_work(run, tmp_path):
    files = mc_task_files(tmp_path, ["arc_easy"], 4)
    used = tmp_path / "used"
    used.mkdir()
    (used / "results.json").write_text("{}")
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    base = ["eval", "--model", "paw-tiny/qwen2", "--tasks", "arc_easy", "--data-file", files["arc_easy"]]
    refused = run_paw(*base, "--output", str(used))
    assert refused.returncode == 2 and "already holds files" in refused.stderr
    refused = run_paw(*base, "--output", str(blocked))
    assert refused.returncode == 2 and "a file is in the way" in refused.stderr
    refused = run_paw("merge", "--adapter", str(run.final_model), "--output", str(blocked / "m"))
    assert refused.returncode == 2 and "is a file, not a directory" in refused.stderr


def test_validate_only_checks_the_experiment_it_would_create(run, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text((run.dir / "config.yaml").read_text())
    taken = run_paw("train", str(config), "--name", run.name, "--validate-only")
    assert taken.returncode == 2 and "already exists" in taken.stderr
    free = run_paw("train", str(config), "--name", "fresh", "--validate-only")
    assert free.returncode == 0, free.stderr


def test_a_transferred_adapter_is_prompted_as_it_was_trained(run, tmp_path):
    out = tmp_path / "moved"
    done = run_paw(
        "transfer", "--adapter", str(run.final_model), "--target", "paw-tiny/qwen2", "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    trained = json.loads((run.final_model / "paw_prompt.json").read_text())
    moved = json.loads((out / "paw_prompt.json").read_text())
    assert moved["format"] == trained["format"] and moved["prompt_template"] == trained["prompt_template"]
    assert (
        json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "paw-tiny/qwen2"
    )


def test_the_report_reads_as_text(run):
    from paw.train.report import loss_span

    text = run.report.read_text()
    assert "{'" not in text and "None" not in text
    assert "mean of the first/last" in text and "host RSS" in text and "LR switches: none" in text
    steps = [{"loss": v} for v in (4.0, 2.0, 1.0, 0.5)]
    assert loss_span(steps) == "3.0000 → 0.7500 (mean of the first/last 2 logged steps)"


def test_an_adapter_whose_tokenizer_is_not_the_bases_is_refused(run, tmp_path):
    from transformers import AutoTokenizer

    adapter = tmp_path / "other-tokenizer"
    shutil.copytree(run.final_model, adapter)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    tokenizer.add_tokens([f"<extra_{i}>" for i in range(2000)])  # the tiny base has 762 + a few
    tokenizer.save_pretrained(adapter)
    files = mc_task_files(tmp_path, ["arc_easy"], 4)
    done = run_paw("eval", "--adapter", str(adapter), "--tasks", "arc_easy", "--data-file", files["arc_easy"])
    assert done.returncode == 2, done.stderr
    assert "more than the" in done.stderr and "it was not made for this base" in done.stderr


def test_an_adapter_whose_tokenizer_moves_a_special_token_is_refused(run, tmp_path):
    """Same vocabulary size, but '<|endoftext|>' (end of sequence, padding) swapped with another token's id."""
    import json

    adapter = tmp_path / "moved-special-token"
    shutil.copytree(run.final_model, adapter)
    tokenizer_file = adapter / "tokenizer.json"
    spec = json.loads(tokenizer_file.read_text())
    vocab = spec["model"]["vocab"]
    special = next(t for t in spec["added_tokens"] if t["content"] == "<|endoftext|>")
    other = next(token for token, index in vocab.items() if index == special["id"] + 5)
    vocab[other], special["id"] = special["id"], special["id"] + 5
    vocab["<|endoftext|>"] = special["id"]
    tokenizer_file.write_text(json.dumps(spec))
    files = mc_task_files(tmp_path, ["arc_easy"], 4)
    done = run_paw("eval", "--adapter", str(adapter), "--tasks", "arc_easy", "--data-file", files["arc_easy"])
    assert done.returncode == 2, done.stderr
    assert "its tokenizer gives the special token '<|endoftext|>'" in done.stderr, done.stderr
    merged = run_paw("merge", "--adapter", str(adapter), "--output", str(tmp_path / "merged"))
    assert merged.returncode == 2 and "its tokenizer gives the special token" in merged.stderr, merged.stderr
    assert not (tmp_path / "merged").exists()


def test_an_adapter_on_another_base_is_refused_unless_asked(run, tmp_path):
    """The adapter names paw-tiny/qwen2; --model paw-tiny/qwen2-upgrade (same modules, other weights) is refused
    before loading; --other-base applies it; the base's cache dir named as a path is the same base."""
    from paw.models.resolve import resolve_model

    files = mc_task_files(tmp_path, ["arc_easy"], 4)
    common = ["--adapter", str(run.final_model), "--tasks", "arc_easy", "--data-file", files["arc_easy"]]
    done = run_paw("eval", "--model", "paw-tiny/qwen2-upgrade", *common, "--output", str(tmp_path / "a"))
    assert done.returncode == 2, done.stderr
    assert "was trained on paw-tiny/qwen2" in done.stderr and "--other-base" in done.stderr
    assert not (tmp_path / "a").exists()
    done = run_paw(
        "eval", "--model", "paw-tiny/qwen2-upgrade", "--other-base", *common, "--output", str(tmp_path / "b")
    )
    assert done.returncode == 0, done.stderr
    local = resolve_model("paw-tiny/qwen2").location
    done = run_paw("eval", "--model", local, *common, "--output", str(tmp_path / "c"))
    assert done.returncode == 0, done.stderr
