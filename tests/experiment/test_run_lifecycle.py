"""A run's lifecycle as the CLI shows it: one writer per experiment, SIGTERM/SIGINT recorded as resumable with
exit 143/130, killed runs told from live ones in `paw exp list`, and `--resume` refusing changed inputs."""

from __future__ import annotations

import json
import signal

from tests.conftest import run_paw, small_config, train_until, write_config


def test_sigterm_is_resumable_and_a_second_writer_is_refused(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path, max_steps=400, save={"every": 2}, logging_steps=50)
    config = write_config(tmp_path / "c.yaml", cfg)
    proc = train_until(config, "run", "checkpoint-2")
    exp = tmp_path / "run"

    second = run_paw("train", "--resume", str(exp))  # while the first still writes
    assert second.returncode == 2
    assert f"being written by pid {proc.pid}" in second.stderr and "Traceback" not in second.stderr
    listed = run_paw("exp", "list", "--root", str(tmp_path))
    assert "running" in listed.stdout

    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "interrupted (SIGTERM)" in err and f"paw train --resume {exp}" in err
    meta = json.loads((exp / "metadata.json").read_text())
    assert meta["status"] == "interrupted" and meta["error"] == "SIGTERM"
    listed = run_paw("exp", "list", "--root", str(tmp_path))
    assert "interrupted" in listed.stdout and f"paw train --resume {exp}" in listed.stdout


def test_a_killed_run_shows_as_killed_and_resume_refuses_changed_data(tmp_path, alpaca_file):
    data = tmp_path / "train.jsonl"
    data.write_bytes(alpaca_file.read_bytes())
    cfg = small_config(data, tmp_path, max_steps=400, save={"every": 2}, logging_steps=50)
    proc = train_until(write_config(tmp_path / "c.yaml", cfg), "run", "checkpoint-4")
    exp = tmp_path / "run"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    listed = run_paw("exp", "list", "--root", str(tmp_path))
    assert "killed" in listed.stdout and "running" not in listed.stdout

    lines = data.read_text().splitlines(keepends=True)
    data.write_text("".join(lines[:-1]))  # one example fewer: another run's data
    refused = run_paw("train", "--resume", str(exp))
    assert refused.returncode == 2, refused.stderr
    assert "data.train_file bytes differ" in refused.stderr and "--resume-changed" in refused.stderr

    newest = max((exp / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    (newest / "adapter_model.safetensors").write_bytes(b"damaged")
    cfg_dump = (exp / "config.yaml").read_text().replace("max_steps: 400", "max_steps: 4")
    (exp / "config.yaml").write_text(cfg_dump)  # also finish quickly: a config change, listed too
    allowed = run_paw("train", "--resume", str(exp), "--resume-changed")
    assert allowed.returncode == 0, allowed.stderr
    assert f"{newest.name} is damaged (adapter_model.safetensors has 7 bytes" in allowed.stderr
    meta = json.loads((exp / "metadata.json").read_text())
    assert meta["status"] == "completed"
    assert any("data.train_file" in c for c in meta["resume_changed"])
    assert any(c.startswith("config training.max_steps: 400 → 4") for c in meta["resume_changed"])


def test_sigint_exits_130_and_records_it(tmp_path, alpaca_file):
    cfg = small_config(alpaca_file, tmp_path, max_steps=400, save={"every": 2}, logging_steps=50)
    proc = train_until(write_config(tmp_path / "c.yaml", cfg), "run", "checkpoint-2")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert json.loads((tmp_path / "run" / "metadata.json").read_text())["error"] == "SIGINT"
