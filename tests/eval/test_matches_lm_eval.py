"""paw's native scores equal lm-evaluation-harness's on the same tiny model and the same local data."""

import json

import pytest

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
