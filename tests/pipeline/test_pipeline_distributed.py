"""``paw pipeline`` under torchrun on CPU (gloo, 2 processes, tiny models): the same results as one process,
a kill during a DDP training resumed under torchrun, and a failing rank-0 step that stops both ranks once."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, TORCHRUN, TORCHRUN_ENV, run_paw, run_torchrun

pytestmark = pytest.mark.slow

QUICK = str(REPO / "configs" / "pipeline" / "quick_test.yaml")
# one global batch of 8 holds every row: each step's gradient is the same sum in 1 or 2 processes, whatever
# the sampler's order; SGD keeps the updates as exact as that sum
ARGS = (
    "pipeline.seeds=1",
    "data.max_samples=8",
    "training.optim=sgd",
    "training.global_batch_size=8",
    "training.schedule=[{steps: 30, lr: 0.2}]",
    "training.save={start_step: 4, every: 4, keep_last: 2}",
    "training.logging_steps=5",
    "eval.limit=30",
)


def _torchrun(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return run_torchrun("pipeline", QUICK, f"experiment.root={root}", *ARGS, *args, env=env)


def _json(path: Path):
    return json.loads(path.read_text())


def _results(exp: Path) -> dict:
    return _json(exp / "results" / "pipeline_results.json")["tasks"]


def _losses(exp: Path) -> dict[str, float]:
    return {
        key: _json(exp / "steps" / f"{key}.json")["outputs"]["final_loss"]
        for key in ("2_train_source-seed42", "6_train_target-seed42")
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same pipeline in one process and under torchrun with two."""
    root = tmp_path_factory.mktemp("pipelines")
    one = run_paw("pipeline", QUICK, f"experiment.root={root}", *ARGS, "--name", "one")
    assert one.returncode == 0, one.stderr
    two = _torchrun(root, "--name", "two")
    assert two.returncode == 0, two.stderr
    return root, two


def test_two_processes_give_the_one_process_results(runs):
    root, two = runs
    assert two.stderr.count("recovery ratio") == 1  # one report, printed by rank 0
    assert sorted(p.name for p in root.iterdir()) == ["one", "two"]
    meta = _json(root / "two" / "metadata.json")
    assert (meta["status"], meta["processes"]) == ("completed", 2)
    plan = _json(root / "two" / "steps" / "2_train_source-seed42" / "results" / "training_report.json")[
        "plan"
    ]
    assert (plan["processes"], plan["global_batch"]) == (2, 8)  # DDP: 2 processes × micro-batch 4
    # step 5's eval split its documents over the ranks and gathered every one of them
    samples = (root / "two" / "steps" / "5_eval_transferred-seed42" / "samples_arc_easy.jsonl").read_text()
    assert len(samples.splitlines()) == 30
    one, two_losses = _losses(root / "one"), _losses(root / "two")
    assert two_losses == pytest.approx(one, rel=1e-4)
    assert _results(root / "two") == _results(root / "one")


def test_a_failing_transfer_stops_both_ranks_and_is_recorded_once(runs, tmp_path):
    root, _ = runs
    shutil.copytree(root / "two", tmp_path / "bad")
    # an unrelated random target: the similarity gate rejects every module, so rank 0's transfer fails
    failed = _torchrun(
        tmp_path, "--name", "bad", "--resume", "--steps", "3", "target.name_or_path=paw-tiny/llama"
    )
    assert failed.returncode != 0
    assert failed.stderr.count("error:") == 1, failed.stderr  # rank 1 stopped without a message of its own
    assert "step 3 (transfer to target (seed 42)) failed" in failed.stderr
    meta = _json(tmp_path / "bad" / "metadata.json")
    assert (meta["status"], meta["failed_step"]) == ("failed", "3_transfer-seed42")
    assert _json(tmp_path / "bad" / "steps" / "3_transfer-seed42.json")["status"] == "failed"
    assert _json(tmp_path / "bad" / "steps" / "2_train_source-seed42.json")["status"] == "completed"


def test_killed_under_torchrun_then_resumed_under_torchrun(runs, tmp_path):
    root, _ = runs
    command = [*TORCHRUN, "pipeline", QUICK, f"experiment.root={tmp_path}", *ARGS, "--name", "killed"]
    proc = subprocess.Popen(
        command,
        env=TORCHRUN_ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    ckpts = tmp_path / "killed" / "steps" / "6_train_target-seed42" / "checkpoints"
    deadline = time.time() + 300
    while not list(ckpts.glob("checkpoint-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)  # what a scheduler does: torchrun passes it to both ranks
    try:
        proc.wait(timeout=120)
    finally:
        os.killpg(proc.pid, signal.SIGKILL) if proc.poll() is None else None
    assert not (ckpts.parent / "models" / "final_model").exists(), "step 6 finished before the kill"
    meta = _json(tmp_path / "killed" / "metadata.json")
    assert (meta["status"], meta["failed_step"]) == ("interrupted", "6_train_target-seed42")

    resumed = _torchrun(tmp_path, "--name", "killed", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("skipped") == 5  # steps 1-5, said once (by rank 0)
    assert "step 6 (train target LoRA (seed 42)): resuming the interrupted training from checkpoint-" in (
        resumed.stderr
    )
    assert _json(tmp_path / "killed" / "steps" / "6_train_target-seed42.json")["attempts"] == 2
    assert _losses(tmp_path / "killed") == pytest.approx(_losses(root / "one"), rel=1e-4)
    assert _results(tmp_path / "killed") == _results(root / "one")


RANK1_FAULT = """
import os
if os.environ.get("RANK") == "1":  # only rank 1's evals fail, as on one faulty GPU
    import paw.eval.api as api

    def evaluate(*args, **kwargs):
        raise RuntimeError("simulated device fault")

    api.evaluate = evaluate
"""


def test_a_failure_on_rank_1_fails_the_step_on_both_and_rank_0_records_it(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(RANK1_FAULT)
    paths = os.pathsep.join(filter(None, [str(hook), TORCHRUN_ENV.get("PYTHONPATH")]))
    failed = _torchrun(tmp_path, "--name", "f", "--steps", "1", env={**TORCHRUN_ENV, "PYTHONPATH": paths})
    assert failed.returncode != 0
    assert failed.stderr.count("error:") == 1, failed.stderr  # one message, rank 0's, naming rank 1's reason
    assert "step 1 (eval source base) failed: rank 1: RuntimeError: simulated device fault" in failed.stderr
    meta = _json(tmp_path / "f" / "metadata.json")
    assert (meta["status"], meta["failed_step"]) == ("failed", "1_eval_source_base")
    assert meta["error"] == "step 1 (eval source base): rank 1: RuntimeError: simulated device fault"
    record = _json(tmp_path / "f" / "steps" / "1_eval_source_base.json")
    assert (record["status"], record["error"]) == ("failed", "rank 1: RuntimeError: simulated device fault")
    assert not (tmp_path / "f" / "steps" / "1_eval_source_base" / "results.json").exists()


def test_bad_input_under_torchrun_is_one_line(tmp_path):
    """Every rank reads the same arguments and files, so every rank fails alike: rank 0 alone says so."""
    missing = run_torchrun("pipeline", str(tmp_path / "nope.yaml"))
    assert missing.returncode != 0
    assert missing.stderr.count("error:") == 1 and "nope.yaml: config file not found" in missing.stderr
    bad_steps = _torchrun(tmp_path, "--steps", "9")
    assert bad_steps.returncode != 0
    assert (
        bad_steps.stderr.count("error:") == 1 and "step 9 (eval refine control) runs only" in bad_steps.stderr
    )
