"""The GPU check's CPU side: its dry run prints the plan and refuses an incomplete carried wheel set; the
completeness check finds each way a carried set would fail on the device (benchmarks/gpu_env.py)."""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import gpu_env  # noqa: E402


def fake_wheel(folder: Path, name: str, version: str, requires=(), tag="py3-none-any") -> Path:
    path = folder / f"{name}-{version}-{tag}.whl"
    meta = "Metadata-Version: 2.1\nName: {}\nVersion: {}\n{}".format(
        name, version, "".join(f"Requires-Dist: {r}\n" for r in requires)
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA", meta)
    return path


@pytest.fixture
def complete(tmp_path, monkeypatch) -> Path:
    """A carried set that satisfies everything: one wheel per pin, no requirements."""
    monkeypatch.setattr(
        gpu_env, "pins", lambda: {"trl": "1.16.0", "pydantic": "2.14.3", "pydantic-core": "2.50.4"}
    )
    fake_wheel(tmp_path, "trl", "1.16.0", ["accelerate>=1.10.1", "datasets>=4.7; extra == 'x'"])
    fake_wheel(tmp_path, "pydantic", "2.14.3", ["pydantic-core==2.50.4", 'tomli; python_version < "3.11"'])
    fake_wheel(tmp_path, "pydantic_core", "2.50.4", tag="cp312-cp312-manylinux_2_17_x86_64")
    return tmp_path


def test_a_complete_set_passes(complete):
    assert (
        gpu_env.problems(complete) == []
    )  # the image's accelerate 1.15 meets >=1.10.1; extras/markers skipped


def test_each_way_a_set_fails_on_the_device(complete):
    fake_wheel(complete, "lm_eval", "0.4.13", ["sqlitedict", "accelerate>=2"])
    fake_wheel(complete, "trl", "1.15.0")
    fake_wheel(complete, "regex", "2026.11.15", tag="cp311-cp311-manylinux_2_17_x86_64")
    (complete / "pydantic_core-2.50.4-cp312-cp312-manylinux_2_17_x86_64.whl").unlink()
    found = "\n".join(gpu_env.problems(complete))
    assert "lm_eval-0.4.13-py3-none-any.whl needs sqlitedict: neither carried nor in the image" in found
    assert "needs accelerate>=2, in the image: 1.15.0" in found
    assert "two versions of trl" in found
    assert "regex-2026.11.15-cp311-cp311-manylinux_2_17_x86_64.whl does not install on CPython 3.12" in found
    assert "pydantic-core is not carried" in found
    assert "needs pydantic-core==2.50.4: neither carried nor in the image" in found


def test_every_carried_name_is_pinned():
    pins = gpu_env.pins()  # raises naming any carried package that constraints.txt does not pin
    assert {"trl", "datasets", "pydantic", "lm-eval", "bitsandbytes", "deepspeed"} <= set(pins)


def test_dry_run_prints_the_plan_and_names_the_fix_when_wheels_are_missing(tmp_path):
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    for check in (
        "environment",
        "pytest -m gpu",
        "train qwen2.5-1.5b",
        "eval qwen2.5-0.5b",
        "deepspeed zero-2",
    ):
        assert check in done.stdout
    if not (REPO / ".gpu" / "wheels").is_dir():  # a fresh clone: nothing downloaded yet
        assert done.returncode == 2
        assert "make gpu-wheels" in done.stderr
    else:
        assert done.returncode == (2 if "missing:" in done.stderr else 0), done.stderr


def test_trimmed_bitsandbytes_keeps_a_consistent_record(tmp_path):
    wheel = tmp_path / "bitsandbytes-0.50.2-py3-none-manylinux_2_24_x86_64.whl"
    names = [
        "bitsandbytes/__init__.py",
        "bitsandbytes/libbitsandbytes_cuda130.so",
        "bitsandbytes/libbitsandbytes_cuda118.so",
    ]
    with zipfile.ZipFile(wheel, "w") as z:
        for name in names:
            z.writestr(name, b"x")
        z.writestr("bitsandbytes-0.50.2.dist-info/RECORD", "".join(f"{n},sha256=x,1\n" for n in names))
    gpu_env.trim_bitsandbytes(wheel)
    with zipfile.ZipFile(wheel) as z:
        kept = z.namelist()
        record = z.read("bitsandbytes-0.50.2.dist-info/RECORD").decode()
    assert "bitsandbytes/libbitsandbytes_cuda118.so" not in kept and "cuda118" not in record
    assert "bitsandbytes/libbitsandbytes_cuda130.so" in kept and "cuda130" in record


import eval_vs_lm_eval  # noqa: E402
import gpu_check  # noqa: E402


def test_a_timed_out_check_stops_its_children_too(tmp_path):
    """Found on the H200: pytest stopped at its limit left its `paw train` children running beside the next check."""
    pid_file = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)"
    )
    check = gpu_check.Check("sleeper", 1, 5, [sys.executable, "-c", code])
    with (tmp_path / "log").open("w") as log:
        result = gpu_check.run_check(check, dict(__import__("os").environ), 3, log)
    assert result["status"] == "timeout"
    pid = int(pid_file.read_text())
    status = Path(f"/proc/{pid}/status")
    deadline = (
        time.monotonic() + 10
    )  # a signal is delivered asynchronously: on a loaded machine, give it a moment
    while status.exists() and "State:\tZ" not in status.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not status.exists() or "State:\tZ" in status.read_text()  # gone (or a zombie awaiting its reaper)


def test_pytest_arguments_keep_their_quoting(tmp_path):
    """Found on the H200: `-k "a or b"` split on spaces ran no test at all."""
    checks = gpu_check.plan(tmp_path, pytest_args="-k 'qlora or sigkill' tests/gpu")
    command = next(c.command for c in checks if c.name == "pytest -m gpu")
    assert command[-3:] == ["-k", "qlora or sigkill", "tests/gpu"]


def test_stand_ins_are_built_before_and_beside_no_measurement(tmp_path):
    checks = gpu_check.plan(tmp_path)
    assert gpu_check.stand_ins(checks) == ["paw-shape/qwen2.5-0.5b", "paw-shape/qwen2.5-1.5b"]
    assert not any(c.timed for c in checks if c.name in ("environment", "pytest -m gpu"))
    assert all(c.timed for c in checks if c.name.split()[0] in ("train", "eval", "deepspeed"))


def test_eval_benchmark_names_the_data_each_task_read(tmp_path):
    """Found on the H200: two real task files were labelled 'synthetic' because other tasks' files were absent."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "arc_easy.jsonl").write_text(
        '{"id": "1", "question": "q?", "choices": {"text": ["a", "b"], "label": ["A", "B"]}, "answerKey": "A"}\n'
    )
    files, source = eval_vs_lm_eval.task_files(["arc_easy", "piqa"], 5, tmp_path, data)
    assert set(files) == {"arc_easy", "piqa"}
    assert source == f"real ({data}): arc_easy; synthetic: piqa"
