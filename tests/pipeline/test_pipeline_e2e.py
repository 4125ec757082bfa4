"""The pipeline through the real CLI on tiny models: the report, caching, resume after a kill, failure, the demo."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_paw

pytestmark = pytest.mark.slow

QUICK = str(REPO / "configs" / "pipeline" / "quick_test.yaml")
MODELS = ("source_base", "source_lora", "target_base", "transferred", "target_lora")


def _pipeline(root: Path, *args: str) -> subprocess.CompletedProcess:
    return run_paw("pipeline", QUICK, f"experiment.root={root}", *args)


def _json(path: Path):
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One quick-test pipeline with two seeds, shared by the report checks."""
    root = tmp_path_factory.mktemp("pipelines")
    result = _pipeline(root, "--quick-test", "--seeds", "2", "--name", "straight")
    assert result.returncode == 0, result.stderr
    return root / "straight", result


def test_report_files_hold_every_step_and_model(quick_run):
    exp, result = quick_run
    assert "recovery ratio" in result.stderr and "completed" in result.stderr
    meta = _json(exp / "metadata.json")
    assert (meta["status"], meta["kind"], meta["quick_test"]) == ("completed", "pipeline", True)
    results = _json(exp / "results" / "pipeline_results.json")
    task = results["tasks"]["arc_easy"]
    assert list(task["models"]) == list(MODELS)
    for name in ("source_lora", "transferred", "target_lora"):
        assert len(task["models"][name]["per_seed"]) == 2
        assert {"value", "low", "high"} <= set(task["models"][name]["delta_vs_base"])
    # the table's numbers are the evals' own: base accuracy equals what step 1's eval wrote
    step1 = _json(exp / "steps" / "1_eval_source_base" / "results.json")
    assert task["models"]["source_base"]["value"] == pytest.approx(
        step1["tasks"]["arc_easy"]["acc"], abs=1e-6
    )
    assert task["models"]["source_base"]["n"] == 60  # quick test: pipeline.quick_test.eval_limit
    seed_accs = [
        _json(exp / "steps" / f"7_eval_target_lora-seed{s}" / "results.json")["tasks"]["arc_easy"]["acc"]
        for s in (42, 43)
    ]
    assert task["models"]["target_lora"]["per_seed"] == pytest.approx(seed_accs)
    assert "recovery_ratio" in task and ("value" in task["recovery_ratio"])
    assert [s["status"] for s in results["steps"]] == ["completed"] * 12  # 1, 2×2, 3×2, 4, 5×2, 6×2, 7×2
    assert all(s["seconds"] is not None and s["peak_rss_mib"] > 0 for s in results["steps"])
    csv_lines = (exp / "results" / "pipeline_results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("task,metric,model") and len(csv_lines) == 1 + len(MODELS)
    assert (
        "| arc_easy (acc) | target + transferred |" in (exp / "results" / "pipeline_results.md").read_text()
    )
    for plot in ("pipeline.png", "training_loss.png", "training_lr.png"):
        assert (exp / "plots" / plot).read_bytes()[:4] == b"\x89PNG"
    assert "![pipeline.png](plots/pipeline.png)" in (exp / "report.md").read_text()
    # each training is a full experiment with TensorBoard events
    assert list((exp / "steps" / "2_train_source-seed42" / "tensorboard").glob("events.out.tfevents.*"))


def test_piped_output_and_log_are_plain_lines(quick_run):
    exp, result = quick_run
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr
    logs = list((exp / "logs").glob("pipeline_*.log"))
    text = logs[0].read_text()
    assert "\r" not in text and "step 6 (train target LoRA (seed 43)): done" in text
    assert "step 1/20" in text  # the trainings' own lines land in the pipeline log too
    assert len(text.splitlines()) < 200


def test_rerun_skips_finished_steps(quick_run, tmp_path):
    """A copy of the experiment elsewhere resumes on its own files: step records keep paths relative to it."""
    exp, _ = quick_run
    copy = tmp_path / "copy"
    shutil.copytree(exp, copy)
    assert not Path(
        _json(copy / "steps" / "5_eval_transferred-seed42.json")["outputs"]["results"]
    ).is_absolute()
    hidden = exp.with_name("straight-hidden")
    exp.rename(hidden)  # the original is out of reach while the copy resumes
    try:
        again = _pipeline(tmp_path, "--quick-test", "--seeds", "2", "--resume", "--name", "copy")
    finally:
        hidden.rename(exp)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("done before with the same inputs — skipped") == 12
    assert ": running" not in again.stderr
    rebuilt = _json(copy / "results" / "pipeline_results.json")["tasks"]
    assert rebuilt == _json(exp / "results" / "pipeline_results.json")["tasks"]


def test_changing_eval_settings_reruns_evals_only(quick_run, tmp_path):
    exp, _ = quick_run
    shutil.copytree(exp, tmp_path / "copy")
    again = _pipeline(tmp_path, "--quick-test", "--seeds", "2", "--resume", "--name", "copy", "eval.limit=30")
    assert again.returncode == 0, again.stderr
    ran = {line.split(" (")[0] for line in again.stderr.splitlines() if line.endswith(": running")}
    assert ran == {"step 1", "step 2", "step 4", "step 5", "step 7"}  # no transfer, no target training
    assert "training done before with the same inputs — reusing it" in again.stderr
    results = _json(tmp_path / "copy" / "results" / "pipeline_results.json")
    assert results["tasks"]["arc_easy"]["models"]["target_base"]["n"] == 30


KILL_ARGS = (
    "pipeline.seeds=1",
    "training.schedule=[{steps: 45, lr: 3.0e-3}, {steps: 15, lr: 3.0e-4}]",
    "training.save={start_step: 10, every: 5, keep_last: 2}",
    "data.max_samples=200",
    "eval.limit=60",
)


def test_kill_during_target_training_then_resume_equals_an_uninterrupted_run(tmp_path):
    straight = _pipeline(tmp_path, "--name", "straight", *KILL_ARGS)
    assert straight.returncode == 0, straight.stderr

    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    command = [
        sys.executable,
        "-m",
        "paw",
        "pipeline",
        QUICK,
        f"experiment.root={tmp_path}",
        "--name",
        "killed",
    ]
    proc = subprocess.Popen(
        [*command, *KILL_ARGS], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpts = tmp_path / "killed" / "steps" / "6_train_target-seed42" / "checkpoints"
    deadline = time.time() + 300
    while not list(ckpts.glob("checkpoint-*")) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (ckpts.parent / "models" / "final_model").exists(), "step 6 finished before the kill"
    assert _json(tmp_path / "killed" / "metadata.json")["status"] == "running"  # never looks completed

    resumed = _pipeline(tmp_path, "--name", "killed", "--resume", *KILL_ARGS)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("skipped") == 5  # steps 1-5
    assert (
        "step 6 (train target LoRA (seed 42)): resuming the interrupted training from checkpoint-"
        in resumed.stderr
    )
    record = _json(tmp_path / "killed" / "steps" / "6_train_target-seed42.json")
    assert record["attempts"] == 2 and record["outputs"]["resumed_from"]
    a = _json(tmp_path / "straight" / "results" / "pipeline_results.json")["tasks"]
    b = _json(tmp_path / "killed" / "results" / "pipeline_results.json")["tasks"]
    assert a == b


def test_a_failed_step_marks_the_pipeline_failed_and_keeps_finished_steps(tmp_path):
    # an unrelated random target: the similarity gate rejects every module, so the transfer writes nothing
    failed = _pipeline(
        tmp_path, "--quick-test", "--seeds", "1", "--name", "bad", "target.name_or_path=paw-tiny/llama"
    )
    assert failed.returncode != 0
    assert "Traceback" not in failed.stderr
    assert "step 3 (transfer to target (seed 42)) failed" in failed.stderr
    meta = _json(tmp_path / "bad" / "metadata.json")
    assert meta["status"] == "failed" and meta["failed_step"] == "3_transfer-seed42"
    assert meta["error"].startswith("step 3 (transfer to target (seed 42)):")
    for key in ("1_eval_source_base", "2_train_source-seed42"):
        assert _json(tmp_path / "bad" / "steps" / f"{key}.json")["status"] == "completed"
    assert (tmp_path / "bad" / "steps" / "2_train_source-seed42" / "models" / "final_model").is_dir()
    partial = _json(tmp_path / "bad" / "results" / "pipeline_results.json")
    assert list(partial["tasks"]["arc_easy"]["models"]) == ["source_base", "source_lora"]

    # nothing finished is redone: the finished steps are reused by a resumed run of steps 1-2
    again = _pipeline(
        tmp_path,
        "--quick-test",
        "--name",
        "bad",
        "--resume",
        "--steps",
        "1,2",
        "--seeds",
        "1",
        "target.name_or_path=paw-tiny/llama",
    )
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("skipped") == 2
    assert _json(tmp_path / "bad" / "metadata.json")["status"] == "partial"


def test_steps_that_need_unrun_steps_are_refused(tmp_path):
    result = _pipeline(tmp_path, "--quick-test", "--steps", "3", "--name", "early")
    assert result.returncode == 2
    assert "step 3 (transfer to target (seed 42)) needs step 2" in result.stderr
    meta = _json(tmp_path / "early" / "metadata.json")
    assert meta["status"] == "failed" and "needs step 2" in meta["error"]  # not left looking like it runs


def test_a_refine_stage_on_the_source_answers_is_evaluated_beside_its_control(tmp_path):
    result = _pipeline(
        tmp_path,
        "--quick-test",
        "--seeds",
        "1",
        "--name",
        "refined",
        "transfer.refine.steps=60",  # × 20/400 (quick test): 3 steps
        "transfer.refine.examples=16",
        "transfer.refine.labels=source",
    )
    assert result.returncode == 0, result.stderr
    exp = tmp_path / "refined"
    transfer = _json(exp / "steps" / "3_transfer-seed42.json")["outputs"]
    assert transfer["refine_labels"]["labels"] == "source" and transfer["refine_labels"]["rows"] > 0
    assert not Path(transfer["adapter"]).is_absolute()  # record paths are relative to the experiment dir
    report = _json(exp / transfer["adapter"] / "transfer_report.json")["refine"]
    assert report["steps"] == 3 and report["examples"] == 16
    assert Path(report["labels"]["file"]).is_file()
    # steps 8 and 9 scored the two refine runs' adapters
    for number, kind, run in ((8, "refined", "transferred_init"), (9, "refine_control", "standard_init")):
        record = _json(exp / "steps" / f"{number}_eval_{kind}-seed42.json")
        assert record["status"] == "completed" and exp / record["outputs"]["adapter"] == Path(
            report[run]["adapter"]
        )
    results = _json(exp / "results" / "pipeline_results.json")
    task = results["tasks"]["arc_easy"]
    assert list(task["models"]) == [*MODELS, "refined", "refine_control"]
    assert {"value", "low", "high"} <= set(task["refined_vs_control"])
    assert "recovery_ratio_refined" in task
    step8 = _json(exp / "steps" / "8_eval_refined-seed42" / "results.json")
    assert task["models"]["refined"]["value"] == pytest.approx(step8["tasks"]["arc_easy"]["acc"], abs=1e-6)
    # the run the refine stage keeps (by validation loss) and its own row against the control
    kept = task["refine_kept"]
    expected = {"transferred_init": "refined", "standard_init": "control"}[report["kept"]]
    assert transfer["refine_kept"] == expected and kept["runs"] == [expected]
    step = "8_eval_refined" if expected == "refined" else "9_eval_refine_control"
    chosen = _json(exp / "steps" / f"{step}-seed42" / "results.json")
    assert kept["value"] == pytest.approx(chosen["tasks"]["arc_easy"]["acc"], abs=1e-6)
    assert {"value", "low", "high"} <= set(kept["vs_control"])
    assert "RR refined" in result.stdout + result.stderr and "RR kept" in result.stdout + result.stderr
    markdown = (exp / "results" / "pipeline_results.md").read_text()
    assert (
        "**refined transfer** on arc_easy" in markdown
        and "**kept by validation loss** on arc_easy" in markdown
    )


def test_demo_shows_learning_and_a_transfer_figure(tmp_path):
    started = time.perf_counter()
    result = run_paw("demo", "--workdir", str(tmp_path / "demo"))
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stderr
    assert "recovery ratio" in result.stdout and "report:" in result.stdout
    (exp,) = (tmp_path / "demo" / "experiments").iterdir()
    task = _json(exp / "results" / "pipeline_results.json")["tasks"]["arc_easy"]
    models = {name: row["value"] for name, row in task["models"].items()}
    assert models["source_lora"] > models["source_base"] + 0.3  # chance is 25%
    assert models["target_lora"] > models["target_base"] + 0.2
    assert task["recovery_ratio"]["value"] > 0.5  # the upgrade pair: transfer carries most of the gain
    assert (exp / "plots" / "pipeline.png").is_file() and (exp / "report.md").is_file()
    assert seconds < 180


def test_exp_list_show_compare_read_what_runs_wrote(quick_run):
    exp, _ = quick_run
    listed = run_paw("exp", "list", "--root", str(exp.parent))
    assert listed.returncode == 0, listed.stderr
    assert "straight" in listed.stdout and "pipeline" in listed.stdout and "completed" in listed.stdout
    assert "RR " in listed.stdout or "transferred " in listed.stdout  # the best figure: RR where defined
    shown = run_paw("exp", "show", "straight", "--root", str(exp.parent))
    assert shown.returncode == 0 and "arc_easy transferred %" in shown.stdout and "report.md" in shown.stdout
    training = exp / "steps" / "2_train_source-seed42"  # a training experiment, named by its dir
    compared = run_paw("exp", "compare", str(exp), str(training))
    assert compared.returncode == 0, compared.stderr
    assert "arc_easy recovery ratio" in compared.stdout and "train loss" in compared.stdout
    missing = run_paw("exp", "show", "nope", "--root", str(exp.parent))
    assert missing.returncode == 2 and "no experiment 'nope'" in missing.stderr
