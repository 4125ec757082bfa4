"""The zoo's build on the micro-zoo (a slice of the standard library's docstrings, narrow models, a few dozen steps):
every family and tokenizer kind, determinism, resume after a kill, and the CLI around it. The full zoo is never
built in tests."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_paw


def _sha(path):
    return hashlib.sha256((path / "model.safetensors").read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def micro_zoo(paw_cache):
    from paw.models.zoo import build_zoo

    return build_zoo(micro=True, log=lambda _: None)


def test_the_micro_zoo_has_every_family_and_both_tokenizer_kinds(micro_zoo):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.models.zoo import zoo_spec

    models = micro_zoo["models"]
    assert set(models) == set(zoo_spec()["models"])
    assert {r["model_type"] for r in models.values()} == {"qwen2", "llama", "gemma2", "phi3"}
    assert len({r["vocab_size"] for r in models.values()}) == 4  # four tokenizers, four vocabulary sizes
    sizes = models["qwen2-s"]["config"], models["qwen2-m"]["config"]
    assert sizes[0]["num_hidden_layers"] < sizes[1]["num_hidden_layers"]  # one family at two sizes
    assert models["qwen2-s"]["vocab_size"] == models["qwen2-m"]["vocab_size"]  # sharing one tokenizer
    corpus = micro_zoo["corpus"]
    assert corpus["train"]["paragraphs"] > 500 and corpus["heldout"]["paragraphs"] > 10
    assert "python-stdlib" in corpus["sources"]
    root = micro_zoo["root"]
    markers = {}
    for name, record in models.items():
        path = f"{root}/models/{name}"
        assert record["last_loss"] < record["first_loss"] - 0.5  # it learned from the text
        assert record["heldout"]["perplexity"] < record["vocab_size"]  # far from uniform
        tokenizer = AutoTokenizer.from_pretrained(path)
        markers[record["family"]] = tokenizer.tokenize("the number of items")
        model = AutoModelForCausalLM.from_pretrained(path)
        assert model.config.vocab_size == len(tokenizer) == record["vocab_size"]
    for family, marker in (("qwen2", "Ġ"), ("llama", "Ġ"), ("gemma2", "▁"), ("phi3", "▁")):
        spaces = 3 + (
            family == "phi3"
        )  # Phi-3 (Llama-2 style) puts a dummy prefix before the text, Gemma not
        assert sum(token.startswith(marker) for token in markers[family]) == spaces, markers[family]
    assert json.loads((Path(root) / "zoo.json").read_text())["models"].keys() == models.keys()


def test_a_zoo_model_builds_to_identical_weights_and_resumes_after_a_kill(micro_zoo, tmp_path):
    """A second cache builds llama again: killed (SIGKILL) once a checkpoint exists, then run again, it resumes and
    ends with the very weights of the uninterrupted build."""
    from paw.models.zoo import zoo_spec

    env = {**os.environ, "PAW_CACHE_DIR": str(tmp_path)}
    root = tmp_path / f"zoo-micro-v{zoo_spec()['version']}"
    command = [sys.executable, "-m", "paw", "zoo", "build", "--micro", "--only", "llama"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    work = root / ".work" / "llama"
    deadline = time.time() + 120
    while not list(work.glob("checkpoint-*/trainer_state.json")) and time.time() < deadline:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    built = root / "models" / "llama"
    assert not built.exists()  # nothing half-built looks complete
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    record = json.loads((built / "zoo_model.json").read_text())
    assert record["resumed"] is True
    assert _sha(built) == _sha(Path(micro_zoo["root"]) / "models" / "llama")
    assert not work.exists()  # the checkpoints go once the model is in place
    assert not list((root / "models").glob(".llama-*"))  # nor the killed build's staging dir


def test_zoo_names_resolve_and_mistakes_are_one_line(micro_zoo, tmp_path):
    from paw.models.resolve import resolve_model

    assert resolve_model("paw-zoo/qwen2-s", build_tiny=False).kind == "zoo"
    done = run_paw("zoo", "build", "--only", "qwen2-x")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "unknown zoo model 'qwen2-x'" in done.stderr and "qwen2-s" in done.stderr
    done = run_paw("eval", "--model", "paw-zoo/phi3", "--tasks", "arc_easy", "--output", str(tmp_path / "o"))
    assert done.returncode == 2 and "paw-zoo/phi3 is not built yet: run `paw zoo build`" in done.stderr
    done = run_paw("demo", "--zoo", "gemma2:qwen2-s", "--workdir", str(tmp_path / "demo"))
    assert done.returncode == 2 and "paw-zoo/gemma2 is not built yet" in done.stderr  # the full zoo is not
    assert not (tmp_path / "demo").exists()
    done = run_paw("demo", "--zoo", "gemma2", "--workdir", str(tmp_path / "demo"))
    assert done.returncode == 2 and "give SOURCE:TARGET" in done.stderr
    done = run_paw("zoo", "list", "--micro")
    assert done.returncode == 0 and "paw-zoo/gemma2" in done.stdout and "not built" not in done.stdout


def test_a_lora_moves_between_two_pretrained_families(micro_zoo, tmp_path, alpaca_file):
    """A LoRA trained on the micro Gemma-2 (SentencePiece, ▁) moves to the micro Qwen2 (byte-level BPE, Ġ) with
    `align` and to the micro Phi-3 with `align-fit`; the adapters load in plain peft on their targets."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tests.conftest import small_config, write_config

    root = Path(micro_zoo["root"]) / "models"
    cfg = small_config(alpaca_file, tmp_path / "experiments", max_steps=3)
    cfg["model"] = {"name_or_path": str(root / "gemma2")}
    cfg["data"]["max_length"] = 256
    done = run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", "g", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    adapter = tmp_path / "experiments" / "g" / "models" / "final_model"
    out = tmp_path / "moved"
    args = ["--adapter", str(adapter), "--target", str(root / "qwen2-s"), "--method", "align"]
    done = run_paw(
        "transfer", *args, "--similarity-threshold", "0", "--chance-multiple", "0", "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "transfer_report.json").read_text())
    assert report["shared_tokens"] > 300 and report["transferred"] > 0
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(root / "qwen2-s"), str(out))
    # align-fit, onto Phi-3 (SentencePiece with a dummy prefix, fused projections): fitted on the task's text
    fitted = tmp_path / "fitted"
    args = ["--adapter", str(adapter), "--target", str(root / "phi3"), "--method", "align-fit"]
    done = run_paw(
        "transfer",
        *args,
        "--calibration-data",
        str(alpaca_file),
        "--depth",
        "proportional",
        "--output",
        str(fitted),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((fitted / "transfer_report.json").read_text())
    assert report["calibration_rows"] == 256 and report["transferred"] > 0 and report["fit_r2_mean"] > 0.2
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(root / "phi3"), str(fitted))


@pytest.mark.slow
def test_the_zoo_study_runs_on_the_micro_zoo(micro_zoo, tmp_path):
    """benchmarks/transfer_zoo.py's whole code path (own LoRAs, every method, refine beside its control — from the
    moved and from the shuffled-layer adapter — the controls, RR with CIs) on one cross-family pair of the
    micro-zoo."""
    from tests.conftest import REPO

    out = tmp_path / "study.json"
    command = [sys.executable, str(REPO / "benchmarks" / "transfer_zoo.py"), "--micro", "--seeds", "1"]
    command += [
        "--steps",
        "8",
        "--pairs",
        "phi3:llama",
        "--boot",
        "50",
        "--json",
        str(out),
        "--refine-shuffled",
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    pair = json.loads(out.read_text())["pairs"]["phi3 → llama"]
    methods = {"direct", "project", "align", "shuffled-layer control", "align + refine", "shuffled + refine"}
    differences = {"refine minus control", "shuffled refine minus control", "refine minus shuffled refine"}
    assert methods | differences | {"refine control (standard init)", "unrelated", "guard"} == set(pair)
    assert all(len(pair[m]["units"]) == 1 for m in methods)
    for start in pair["guard"]["align"] + pair["guard"]["shuffled"]:  # the refine guard's measured start
        assert start["scale"] == "-" or len(start["train_loss_by_scale"]) == 5
    assert "| phi3 → llama | align + refine − control |" in done.stdout


@pytest.mark.slow
def test_the_answer_transfer_study_runs_on_the_micro_zoo(micro_zoo, tmp_path):
    """benchmarks/transfer_zoo_distill.py's code path (own LoRAs, the source's answers, a target LoRA trained on
    them, the no-adapter-teacher control, RR) on one cross-family pair of the micro-zoo."""
    from tests.conftest import REPO

    out = tmp_path / "study.json"
    command = [
        sys.executable,
        str(REPO / "benchmarks" / "transfer_zoo_distill.py"),
        "--micro",
        "--seeds",
        "1",
    ]
    command += ["--steps", "60", "--pairs", "llama:phi3", "--controls", "llama:phi3", "--boot", "50"]
    done = subprocess.run(
        command + ["--json", str(out)], capture_output=True, text=True, env=os.environ.copy()
    )
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads(out.read_text())
    pair = record["pairs"]["llama → phi3"]
    assert set(pair) == {"adapter", "base"}
    for teacher in ("adapter", "base"):
        answers = record["answers"][f"llama-0-{teacher}"]
        assert answers["rows"] + answers.get("unanswered", 0) == 800 or "error" in answers
        assert len(pair[teacher]["per_seed"][0]) == 120 and 0 <= pair[teacher]["acc"] <= 1
    assert "| llama → phi3 | adapter |" in done.stdout
