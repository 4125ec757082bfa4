import json

import pytest

from paw.data.synthetic_mc import generate_mc
from paw.errors import PawError
from paw.eval.api import evaluate
from paw.eval.runner import EvalOptions, load_docs
from paw.eval.tasks import get_task
from paw.eval.tasks.generative import cs_extract, gsm8k_extract, gsm8k_normalize
from tests.conftest import run_paw


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def arc_file(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("arc") / "arc.jsonl", generate_mc("arc_easy", 40, seed=5))


def _samples(out_dir, task):
    return [json.loads(line) for line in (out_dir / f"samples_{task}.jsonl").read_text().splitlines()]


def test_batch_size_does_not_change_results(tmp_path, arc_file, paw_cache):
    runs = {}
    for batch in (1, 7, 32):
        out = tmp_path / str(batch)
        res = evaluate(
            "arc_easy",
            model="paw-tiny/qwen2",
            data_files={"arc_easy": str(arc_file)},
            options=EvalOptions(batch_size=batch, log_samples=True),
            output=out,
            dtype="fp32",
        )
        runs[batch] = (res["tasks"]["arc_easy"], _samples(out, "arc_easy"))
        written = json.loads((out / "results.json").read_text())
        assert written["memory"]["peak_rss_mib"] > 0 and "peak_gpu_mib" in written["memory"]  # the run's peak
    for batch in (7, 32):
        for metric in ("acc", "acc_norm", "acc_bytes"):
            assert runs[batch][0].get(metric) == runs[1][0].get(metric)
        for a, b in zip(runs[1][1], runs[batch][1], strict=True):
            assert a["loglikelihoods"] == pytest.approx(b["loglikelihoods"], abs=1e-4)
            assert a["pred"] == b["pred"]


def test_every_registry_schema_scores(tmp_path, paw_cache):
    for task in ("openbookqa", "commonsense_qa", "boolq"):
        path = _write(tmp_path / f"{task}.jsonl", generate_mc(task, 8))
        res = evaluate(task, model="paw-tiny/llama", data_files={task: str(path)}, output=None)
        assert 0.0 <= res["tasks"][task]["acc"] <= 1.0 and res["tasks"][task]["n"] == 8


@pytest.mark.parametrize(
    ("task", "pair"), [("arc_easy", "arc_prompt_completion"), ("hellaswag", "hellaswag_prompt_completion")]
)
def test_builtin_training_pairs_are_prompted_as_their_task_scores(task, pair):
    """``paw-synth/arc-train`` and ``hellaswag-train`` rows are the eval's context + " " + the gold choice, so a
    LoRA trained on them is scored in the format it learned."""
    from paw.data import synthetic_mc

    for row in generate_mc(task, 20, seed=3):
        doc = get_task(task).build(row, "row")
        trained = getattr(synthetic_mc, pair)(row)
        assert (trained["prompt"], trained["completion"]) == (doc.context, " " + doc.choices[doc.gold])


def test_limit_and_sample_ratio_are_seeded(arc_file):
    task = get_task("arc_easy")
    a, total = load_docs(task, str(arc_file), EvalOptions(limit=10))
    b, _ = load_docs(task, str(arc_file), EvalOptions(limit=10))
    c, _ = load_docs(task, str(arc_file), EvalOptions(sample_ratio=0.25))
    assert total == 40 and len(a) == 10 and a == b and len(c) == 10
    with pytest.raises(PawError, match="no examples left"):
        load_docs(task, str(arc_file), EvalOptions(sample_ratio=0.001))


def test_row_errors_name_file_and_line(tmp_path):
    task = get_task("piqa")
    bad = _write(
        tmp_path / "p.jsonl",
        [{"goal": "g", "sol1": "a", "sol2": "b", "label": 0}, {"goal": "g", "sol1": "a"}],
    )
    with pytest.raises(PawError, match=rf"{bad}:2: missing field 'sol2'"):
        load_docs(task, str(bad), EvalOptions())
    out_of_range = _write(tmp_path / "q.jsonl", [{"goal": "g", "sol1": "a", "sol2": "b", "label": 2}])
    with pytest.raises(PawError, match=r"q\.jsonl:1: label 2 is out of range for 2 choices"):
        load_docs(task, str(out_of_range), EvalOptions())


def test_choice_lists_whose_labels_and_texts_disagree_are_refused(tmp_path):
    """ARC/OpenBookQA rows pair choices.text with choices.label: a missing text, a repeated label or one choice
    would score the wrong answer silently."""
    arc = get_task("arc_easy")
    rows = {
        "3 choice texts but 4 labels": {"text": ["a", "b", "c"], "label": ["A", "B", "C", "D"]},
        "choice labels \['A', 'A'\] repeat": {"text": ["a", "b"], "label": ["A", "A"]},
        "1 choice\(s\)": {"text": ["a"], "label": ["A"]},
    }
    for n, (message, choices) in enumerate(rows.items()):
        bad = _write(tmp_path / f"arc{n}.jsonl", [{"question": "q", "choices": choices, "answerKey": "A"}])
        with pytest.raises(PawError, match=rf"arc{n}\.jsonl:1: {message}"):
            load_docs(arc, str(bad), EvalOptions())


def test_gsm8k_and_commonsense_extraction():
    assert gsm8k_extract("so 5+3 = 8.\n#### 1,234", "strict-match") == "1,234"
    assert gsm8k_normalize("1,234") == gsm8k_normalize("Janet has... #### 1234") == "1234"
    assert gsm8k_extract("The answer is $18.", "flexible-extract") == "$18."
    assert gsm8k_normalize("$18.") == "18"
    assert gsm8k_extract("no number", "strict-match") == "[invalid]"
    assert cs_extract("cs_arc_c", "The correct answer is Answer2 because") == "answer2"
    assert cs_extract("cs_boolq", "the correct answer is true") == "true"
    assert cs_extract("cs_piqa", "nothing") == ""


def test_generation_tasks_run(tmp_path, paw_cache):
    gsm = _write(tmp_path / "gsm.jsonl", [{"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"}] * 3)
    cs = _write(
        tmp_path / "cs.jsonl",
        [
            {
                "instruction": "Is fire hot? Answer format: true/false",
                "input": "",
                "output": "the correct answer is true",
                "answer": "true",
            }
        ]
        * 3,
    )
    res = evaluate(
        "gsm8k,cs_boolq",
        model="paw-tiny/qwen2",
        data_files={"gsm8k": str(gsm), "cs_boolq": str(cs)},
        options=EvalOptions(log_samples=True, batch_size=2),
        output=tmp_path / "out",
    )
    assert set(res["tasks"]["gsm8k"]) >= {"exact_match,strict-match", "exact_match,flexible-extract", "n"}
    assert res["tasks"]["cs_boolq"]["n"] == 3
    sample = _samples(tmp_path / "out", "gsm8k")[0]
    assert "Question:" not in sample["output"]  # generation stops at the stop sequence


def test_paw_unified_format_and_python_literal_native_files(tmp_path, paw_cache):
    rows = [
        {
            "id": f"x{i}",
            "dataset": "arc",
            "task_type": "multiple_choice",
            "input": "Which is a fruit?",
            "options": ["A: apple", "B: hammer", "C: car", "D: dog"],
            "target": "A",
            "target_idx": 0,
        }
        for i in range(4)
    ]
    paw_file = _write(tmp_path / "paw.jsonl", rows)
    assert (
        evaluate("paw_mc", model="paw-tiny/qwen2", data_files={"paw_mc": str(paw_file)})["tasks"]["paw_mc"][
            "n"
        ]
        == 4
    )
    literal = tmp_path / "arc_literal.jsonl"
    literal.write_text("".join(repr(r) + "\n" for r in generate_mc("arc_challenge", 4)))
    assert (
        evaluate("arc_challenge", model="paw-tiny/qwen2", data_files={"arc_challenge": str(literal)})[
            "tasks"
        ]["arc_challenge"]["n"]
        == 4
    )


def _check_cli_error(result, *needles):
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, err


def test_cli_bad_inputs(tmp_path, arc_file):
    base = ["eval", "--model", "paw-tiny/qwen2", "--output", str(tmp_path / "out")]
    _check_cli_error(
        run_paw(*base, "--tasks", "arc_chalenge"),
        "unknown task 'arc_chalenge' (did you mean 'arc_challenge'?)",
    )
    _check_cli_error(
        run_paw(*base, "--tasks", "arc_easy", "--data-file", str(tmp_path / "no.jsonl")), "file not found"
    )
    _check_cli_error(
        run_paw(*base, "--tasks", "arc_easy", "--data-file", str(arc_file), "--sample-ratio", "0.001"),
        "no examples left",
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "choices": {"text": ["a"], "label": ["A"]}}) + "\n")
    _check_cli_error(
        run_paw(*base, "--tasks", "arc_easy", "--data-file", str(bad)), f"{bad}:1: missing field 'answerKey'"
    )


def test_adapter_that_does_not_fit_the_base_names_module_and_shapes(tmp_path, alpaca_file, arc_file):
    from tests.conftest import small_config, write_config

    cfg = small_config(alpaca_file, tmp_path, max_steps=1)
    assert run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", "q").returncode == 0
    adapter = tmp_path / "q" / "models" / "final_model"
    result = run_paw(
        "eval", "--model", "paw-tiny/phi3", "--other-base", "--adapter", str(adapter), "--tasks", "arc_easy",
        "--data-file", str(arc_file), cwd=tmp_path,
    )  # fmt: skip
    _check_cli_error(
        result, "its tokenizer gives the special token '<|end|>'"
    )  # qwen2's tokenizer, phi3's ids
    bare = tmp_path / "bare"  # the weights alone: past the base and tokenizer checks, the modules do not fit
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (bare / name).write_bytes((adapter / name).read_bytes())
    result = run_paw(
        "eval",
        "--model",
        "paw-tiny/phi3",
        "--other-base",
        "--adapter",
        str(bare),
        "--tasks",
        "arc_easy",
        "--data-file",
        str(arc_file),
        cwd=tmp_path,
    )
    _check_cli_error(result, "does not fit this base model", "match no module of phi3")
    ok = run_paw(
        "eval", str(tmp_path / "q"), "--tasks", "arc_easy", "--data-file", str(arc_file), "--limit", "5"
    )
    assert ok.returncode == 0, ok.stderr
    results = json.loads((tmp_path / "q" / "results" / "eval_results.json").read_text())
    assert results["model"]["adapter"].endswith("final_model") and results["tasks"]["arc_easy"]["n"] == 5
    assert (tmp_path / "q" / "results" / "eval_results.md").is_file()


def test_adapter_shape_mismatch_names_module_and_shapes(tmp_path, alpaca_file, arc_file, tiny_qwen2):
    import shutil

    from transformers import AutoConfig, AutoModelForCausalLM

    from paw.models.loaded import load_for_eval
    from tests.conftest import small_config, write_config

    wide = tmp_path / "wide-qwen2"
    shutil.copytree(tiny_qwen2, wide)
    config = AutoConfig.from_pretrained(wide)
    config.intermediate_size = 256
    AutoModelForCausalLM.from_config(config).save_pretrained(wide)
    cfg = small_config(alpaca_file, tmp_path, max_steps=1)
    assert run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", "a").returncode == 0
    with pytest.raises(
        PawError,
        match=r"does not fit this base model: .*mlp\.\w+_proj.*torch\.Size\(\[.*\]\) in the "
        r"adapter but the model needs torch\.Size",
    ):
        load_for_eval(str(wide), str(tmp_path / "a" / "models" / "final_model"), other_base=True)


def test_data_parallel_eval_equals_one_process(tmp_path, arc_file, paw_cache):
    import os
    import subprocess
    import sys

    single = evaluate("arc_easy", model="paw-tiny/qwen2", data_files={"arc_easy": str(arc_file)}, output=None)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29533",
        "-m",
        "paw",
        "eval",
        "--model",
        "paw-tiny/qwen2",
        "--tasks",
        "arc_easy",
        "--data-file",
        str(arc_file),
        "--output",
        str(tmp_path / "dp"),
        "--log-samples",
    ]
    result = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    assert result.returncode == 0, result.stderr
    multi = json.loads((tmp_path / "dp" / "results.json").read_text())
    for metric in ("acc", "acc_norm"):
        assert multi["tasks"]["arc_easy"][metric] == single["tasks"]["arc_easy"][metric]
    assert multi["tasks"]["arc_easy"]["n"] == 40
    assert len((tmp_path / "dp" / "samples_arc_easy.jsonl").read_text().splitlines()) == 40


def test_instruction_tasks_prompt_a_chat_trained_adapter_with_its_template(tmp_path, paw_cache):
    from tests.conftest import small_config, write_config

    chat = _write(
        tmp_path / "chat.jsonl",
        [
            {
                "messages": [
                    {"role": "user", "content": "Is fire hot?"},
                    {"role": "assistant", "content": "true"},
                ]
            }
        ]
        * 8,
    )
    cfg = small_config(chat, tmp_path, max_steps=1)
    assert run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--name", "chat").returncode == 0
    adapter = tmp_path / "chat" / "models" / "final_model"
    spec = json.loads((adapter / "paw_prompt.json").read_text())
    assert spec["prompt_template"] == "chat" and spec["stop_tokens"] == ["<|endoftext|>", "<|im_end|>"]
    cs = _write(tmp_path / "cs.jsonl", [{"instruction": "Is fire hot?", "input": "", "answer": "true"}] * 2)
    evaluate(
        "cs_boolq",
        adapter=str(adapter),
        data_files={"cs_boolq": str(cs)},
        options=EvalOptions(log_samples=True),
        output=tmp_path / "out",
    )
    sample = _samples(tmp_path / "out", "cs_boolq")[0]
    assert sample["prompt"] == "<|im_start|>user\nIs fire hot?<|im_end|>\n<|im_start|>assistant\n"


def test_hub_task_offline_says_how_to_use_a_local_copy(tmp_path):
    result = run_paw(
        "eval", "--model", "paw-tiny/qwen2", "--tasks", "arc_easy", "--output", str(tmp_path / "o")
    )
    _check_cli_error(result, "could not be loaded", "--data-file arc_easy=PATH")


def test_a_task_is_one_module_and_one_registry_line(tmp_path, paw_cache, monkeypatch):
    """A test-only generation task (tests/eval/echo_task.py) registered with one line runs end to end: the runner
    knows no task names, the task's own scorer fills each sample and its metric is aggregated."""
    from paw.eval.tasks import REGISTRY

    monkeypatch.setitem(REGISTRY, "echo_word", "tests.eval.echo_task")
    data = _write(tmp_path / "words.jsonl", [{"word": w} for w in ("red", "blue", "green")])
    results = evaluate(
        "echo_word",
        model="paw-tiny/qwen2",
        data_files={"echo_word": str(data)},
        options=EvalOptions(log_samples=True),
        output=tmp_path / "out",
    )
    task = results["tasks"]["echo_word"]
    assert task["n"] == 3 and 0.0 <= task["said"] <= 1.0
    sample = _samples(tmp_path / "out", "echo_word")[0]
    assert {"said", "length", "output"} <= set(sample) and sample["length"] == len(sample["output"])
