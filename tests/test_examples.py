"""examples/ run as written: quick_start.py end to end, the shell scripts parse, and run_inference.sh runs offline."""

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

EXAMPLES = REPO / "examples"


@pytest.mark.slow
def test_quick_start_runs_and_learns(tmp_path):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "quick_start.py")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    base, tuned = map(float, re.search(r"base ([\d.]+)% -> with LoRA ([\d.]+)%", result.stdout).groups())
    assert tuned > base + 30
    assert "transferred 14/14 modules" in result.stdout


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.sh")))
def test_shell_examples_parse(script):
    assert subprocess.run(["bash", "-n", str(EXAMPLES / script)]).returncode == 0


@pytest.mark.slow
def test_run_inference_example_runs_offline(tmp_path):
    env = {**os.environ, "PAW": f"{sys.executable} -m paw"}
    result = subprocess.run(
        ["bash", str(EXAMPLES / "run_inference.sh")], env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert "3 output(s)" in result.stderr and "results:" in result.stdout
