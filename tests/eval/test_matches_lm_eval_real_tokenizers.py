"""paw's scores equal lm-evaluation-harness's with real tokenizers (Qwen2 byte-level BPE, Llama-3 with its BOS,
Phi-3 SentencePiece with ▁ and BOS) on depth-cut stand-ins of the published shapes, full vocabularies included."""

import json

import pytest

from paw.eval.api import evaluate
from paw.eval.lm_eval_backend import local_task_yaml, run_lm_eval
from paw.eval.runner import EvalOptions
from paw.models.resolve import resolve_model
from tests.conftest import mc_task_files

pytestmark = pytest.mark.slow
MODELS = ("paw-shape/qwen2.5-0.5b@1", "paw-shape/llama-3.2-1b@1", "paw-shape/phi-3.5-mini@1")
TASKS = ("arc_easy", "hellaswag")
DOCS = 8


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    return mc_task_files(tmp_path_factory.mktemp("mc"), TASKS, DOCS)


@pytest.mark.parametrize("model", MODELS)
def test_metrics_and_per_example_scores_equal_lm_eval_with_real_tokenizers(
    real_tokenizers, model, task_files, tmp_path
):
    yamls = tmp_path / "yamls"
    yamls.mkdir()
    names = {task: local_task_yaml(task, path, yamls) for task, path in task_files.items()}
    theirs = run_lm_eval(
        resolve_model(model).location, None, list(names.values()), yamls, batch_size=4, dtype="float32"
    )
    ours = evaluate(
        list(TASKS),
        model=model,
        data_files=task_files,
        options=EvalOptions(log_samples=True),
        output=tmp_path / "paw",
        dtype="fp32",
    )
    for task, name in names.items():
        for metric in ("acc", "acc_norm"):
            assert ours["tasks"][task][metric] == theirs["results"][name][f"{metric},none"], (task, metric)
        samples = [
            json.loads(line) for line in (tmp_path / "paw" / f"samples_{task}.jsonl").read_text().splitlines()
        ]
        their_samples = sorted(theirs["samples"][name], key=lambda s: s["doc_id"])
        assert len(samples) == len(their_samples) == DOCS
        for mine, other in zip(samples, their_samples, strict=True):
            assert mine["loglikelihoods"] == pytest.approx([r[0] for r in other["filtered_resps"]], abs=2e-4)
