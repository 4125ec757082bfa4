"""paw's native scores equal lm-evaluation-harness's on the same tiny model and the same local data."""

import json

import pytest
from transformers import AutoTokenizer

from paw.eval.api import evaluate
from paw.eval.lm_eval_backend import local_task_yaml, run_lm_eval
from paw.eval.runner import EvalOptions
from paw.models.resolve import resolve_model
from tests.conftest import mc_task_files

pytestmark = pytest.mark.slow
TASKS = ("arc_easy", "arc_challenge", "piqa", "hellaswag", "winogrande")


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    return mc_task_files(tmp_path_factory.mktemp("mc"), TASKS, 30)


@pytest.fixture(scope="module")
def lm_eval_out(task_files, tmp_path_factory, paw_cache):
    yamls = tmp_path_factory.mktemp("yamls")
    names = [local_task_yaml(task, path, yamls) for task, path in task_files.items()]
    location = resolve_model("paw-tiny/qwen2").location
    return run_lm_eval(location, None, names, yamls, batch_size=4, dtype="float32")


@pytest.mark.parametrize("task", TASKS)
def test_metrics_and_per_example_scores_equal_lm_eval(task, task_files, lm_eval_out, tmp_path):
    ours = evaluate(
        [task],
        model="paw-tiny/qwen2",
        data_files={task: task_files[task]},
        options=EvalOptions(log_samples=True),
        output=tmp_path,
        dtype="fp32",
    )
    theirs = lm_eval_out["results"][f"paw_local_{task}"]
    for metric in ("acc", "acc_norm") if task != "winogrande" else ("acc",):
        assert ours["tasks"][task][metric] == theirs[f"{metric},none"], metric
        assert ours["tasks"][task][f"{metric}_stderr"] == pytest.approx(theirs[f"{metric}_stderr,none"])
    samples = [json.loads(line) for line in (tmp_path / f"samples_{task}.jsonl").read_text().splitlines()]
    their_samples = sorted(lm_eval_out["samples"][f"paw_local_{task}"], key=lambda s: s["doc_id"])
    assert len(samples) == len(their_samples) == 30
    for mine, other in zip(samples, their_samples, strict=True):
        their_lls = [resp[0] for resp in other["filtered_resps"]]
        assert mine["loglikelihoods"] == pytest.approx(their_lls, abs=2e-4)


def test_five_shot_from_the_training_split_equals_lm_eval(tmp_path, paw_cache):
    """--num-fewshot 5 with ARC-Easy's training split given: paw draws the same examples in the same order as
    lm-eval (its rule: the training split; one RNG per task seeded 1234, docs in order), so every prompt, every
    log-likelihood and acc are equal."""
    from paw.data.synthetic_mc import generate_mc

    def write(rows, path):
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        return path

    test = write(generate_mc("arc_easy", 12, seed=5), tmp_path / "arc_test.jsonl")
    train = write(generate_mc("arc_easy", 20, seed=6), tmp_path / "arc_train.jsonl")
    ours = evaluate(
        ["arc_easy"],
        model="paw-tiny/qwen2",
        data_files={"arc_easy": str(test)},
        options=EvalOptions(log_samples=True, num_fewshot=5, fewshot_files={"arc_easy": str(train)}),
        output=tmp_path / "paw",
        dtype="fp32",
    )
    name = local_task_yaml("arc_easy", test, tmp_path, fewshot_file=train)
    location = resolve_model("paw-tiny/qwen2").location
    theirs = run_lm_eval(location, None, [name], tmp_path, batch_size=4, num_fewshot=5, dtype="float32")
    assert ours["tasks"]["arc_easy"]["acc"] == theirs["results"][name]["acc,none"]
    samples = [
        json.loads(line) for line in (tmp_path / "paw" / "samples_arc_easy.jsonl").read_text().splitlines()
    ]
    their_samples = sorted(theirs["samples"][name], key=lambda s: s["doc_id"])
    for mine, other in zip(samples, their_samples, strict=True):
        assert mine["loglikelihoods"] == pytest.approx([r[0] for r in other["filtered_resps"]], abs=2e-4)
    first_context = their_samples[0]["arguments"][0][0]
    assert first_context.count("\nAnswer:") == 6  # five solved examples and the question


def test_few_shot_from_the_scored_file_equals_lm_eval_and_warns(tmp_path, paw_cache, caplog):
    """No training split: both draw from the scored documents (lm-eval: k+1 drawn, the scored one removed), and
    paw says the scores are not comparable with runs that use a training split."""
    import logging

    from paw.data.synthetic_mc import generate_mc

    test = tmp_path / "arc.jsonl"
    test.write_text("".join(json.dumps(row) + "\n" for row in generate_mc("arc_easy", 10, seed=7)))
    with caplog.at_level(logging.WARNING, logger="paw.eval"):
        ours = evaluate(
            ["arc_easy"],
            model="paw-tiny/qwen2",
            data_files={"arc_easy": str(test)},
            options=EvalOptions(log_samples=True, num_fewshot=3),
            output=tmp_path / "paw",
            dtype="fp32",
        )
    assert "drawn from the documents being scored" in caplog.text
    name = local_task_yaml("arc_easy", test, tmp_path)
    location = resolve_model("paw-tiny/qwen2").location
    theirs = run_lm_eval(location, None, [name], tmp_path, batch_size=4, num_fewshot=3, dtype="float32")
    samples = [
        json.loads(line) for line in (tmp_path / "paw" / "samples_arc_easy.jsonl").read_text().splitlines()
    ]
    their_samples = sorted(theirs["samples"][name], key=lambda s: s["doc_id"])
    for mine, other in zip(samples, their_samples, strict=True):
        assert mine["loglikelihoods"] == pytest.approx([r[0] for r in other["filtered_resps"]], abs=2e-4)
    assert ours["tasks"]["arc_easy"]["acc"] == theirs["results"][name]["acc,none"]


def test_gsm8k_greedy_answers_equal_lm_eval_when_prompts_pass_the_context(tmp_path, paw_cache):
    """gsm8k, 2-shot, on a model whose context (320 positions) leaves 64 prompt tokens beside its 256 new ones:
    paw keeps each prompt's last 64 tokens as lm-eval does, and every greedy answer and both exact-match figures
    equal lm-eval's (without the cut, paw ran the whole prompt and its answers differed)."""
    import shutil

    location = tmp_path / "model"
    shutil.copytree(resolve_model("paw-tiny/qwen2").location, location)
    config = json.loads((location / "config.json").read_text())
    (location / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 320}))
    rows = [
        {"question": f"Tom has {a} apples and buys {b} more. How many apples does he have?",
         "answer": f"Tom has {a} + {b} = {a + b} apples.\n#### {a + b}"}
        for a, b in ((3, 4), (12, 5), (7, 9), (20, 22), (1, 1), (6, 30), (8, 8), (15, 2))
    ]  # fmt: skip
    test, train = tmp_path / "gsm8k.jsonl", tmp_path / "gsm8k_train.jsonl"
    test.write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[5:]))
    ours = evaluate(
        ["gsm8k"],
        model=str(location),
        data_files={"gsm8k": str(test)},
        options=EvalOptions(
            log_samples=True, num_fewshot=2, fewshot_files={"gsm8k": str(train)}, batch_size=2
        ),
        output=tmp_path / "paw",
        dtype="fp32",
    )
    name = local_task_yaml("gsm8k", test, tmp_path, fewshot_file=train)
    theirs = run_lm_eval(str(location), None, [name], tmp_path, batch_size=2, num_fewshot=2, dtype="float32")
    samples = [
        json.loads(line) for line in (tmp_path / "paw" / "samples_gsm8k.jsonl").read_text().splitlines()
    ]
    their_samples = sorted(
        (s for s in theirs["samples"][name] if s["filter"] == "strict-match"), key=lambda s: s["doc_id"]
    )
    prompt = their_samples[0]["arguments"][0][0]
    assert len(AutoTokenizer.from_pretrained(location)(prompt)["input_ids"]) > 64  # the cut applies
    assert [s["output"] for s in samples] == [s["resps"][0][0] for s in their_samples]
    for metric in ("exact_match,strict-match", "exact_match,flexible-extract"):
        assert ours["tasks"]["gsm8k"][metric] == theirs["results"][name][metric]
