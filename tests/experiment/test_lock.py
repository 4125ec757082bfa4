"""One writer per experiment (paw.experiment.lock): a second writer is refused naming the holder, a dead holder's
lock is taken over, and a live run is told from a dead one without touching the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from paw.errors import PawError
from paw.experiment.lock import LOCK_FILE, ExperimentLock, live_holder, read_holder

HOLD = """
import sys, time
from paw.experiment.lock import ExperimentLock
lock = ExperimentLock(sys.argv[1], "paw train x.yaml")
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def hold_in_child(exp_dir):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(exp_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    proc = hold_in_child(tmp_path)
    try:
        with pytest.raises(PawError, match=rf"being written by pid {proc.pid} on .*'paw train x.yaml'"):
            ExperimentLock(tmp_path, "paw eval").acquire()
        holder = live_holder(tmp_path)
        assert holder is not None and holder.pid == proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_killed_holder_is_recognised_and_its_lock_taken_over(tmp_path):
    proc = hold_in_child(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / LOCK_FILE).is_file() and read_holder(tmp_path).pid == proc.pid  # the record stays
    assert live_holder(tmp_path) is None  # ... but names no live process
    with ExperimentLock(tmp_path, "paw train --resume") as lock:
        assert lock.taken_over is not None and lock.taken_over.pid == proc.pid
        assert live_holder(tmp_path).pid == os.getpid()
    assert not (tmp_path / LOCK_FILE).exists() and live_holder(tmp_path) is None


def test_the_same_process_cannot_take_it_twice(tmp_path):
    with ExperimentLock(tmp_path, "first"):
        with pytest.raises(PawError, match="one writer per experiment"):
            ExperimentLock(tmp_path, "second").acquire()


def test_another_hosts_lock_counts_while_its_heartbeat_is_fresh(tmp_path):
    import json

    record = {
        "pid": 1,
        "host": "elsewhere",
        "command": "paw train",
        "started": "then",
        "heartbeat": time.time(),
    }
    (tmp_path / LOCK_FILE).write_text(json.dumps(record))
    assert live_holder(tmp_path).host == "elsewhere"
    with pytest.raises(PawError, match="pid 1 on elsewhere"):
        ExperimentLock(tmp_path, "paw eval").acquire()
    record["heartbeat"] = time.time() - 3600
    (tmp_path / LOCK_FILE).write_text(json.dumps(record))
    assert live_holder(tmp_path) is None
    with ExperimentLock(tmp_path, "paw eval") as lock:
        assert lock.taken_over.host == "elsewhere"
