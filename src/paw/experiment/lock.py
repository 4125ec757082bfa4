"""One writer per experiment: ``<experiment>/.paw.lock``, held by the process that writes the experiment (train,
``--resume``, pipeline, eval into an experiment).

The lock is an exclusive ``flock`` on that file, so the kernel releases it when its holder dies, even by SIGKILL:
a dead holder's lock is simply taken over. The file also names the holder (pid, host, command, start) with a
heartbeat refreshed every ``HEARTBEAT_S`` seconds, so that a second writer is refused with one line naming it, and
``paw exp list`` tells a live run from a dead one without touching the lock; on a filesystem shared between hosts
(where flock may be local to one host) another host's lock counts as live while its heartbeat is fresh.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paw.errors import PawError

LOCK_FILE = ".paw.lock"
HEARTBEAT_S = 30.0
STALE_AFTER_S = 4 * HEARTBEAT_S


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    command: str
    started: str
    heartbeat: float

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} ('{self.command}', since {self.started})"


def read_holder(exp_dir: Path) -> Holder | None:
    """Who the lock file names (None: no file, or not a holder record)."""
    try:
        data = json.loads((Path(exp_dir) / LOCK_FILE).read_text(encoding="utf-8"))
        return Holder(
            int(data["pid"]),
            str(data["host"]),
            str(data["command"]),
            str(data["started"]),
            float(data["heartbeat"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "State:\tZ" in status.read_text())


def live_holder(exp_dir: Path) -> Holder | None:
    """The holder of the experiment's lock if it is still running; None when none is (or it died)."""
    holder = read_holder(exp_dir)
    if holder is None:
        return None
    if holder.host == socket.gethostname():
        return holder if _alive(holder.pid) else None
    return holder if time.time() - holder.heartbeat < STALE_AFTER_S else None


class ExperimentLock:
    """``with ExperimentLock(exp_dir, "paw train"):`` — refuse (PawError) if another live process writes there."""

    def __init__(self, exp_dir: str | Path, command: str) -> None:
        self.path = Path(exp_dir) / LOCK_FILE
        self.command = command
        self.taken_over: Holder | None = None
        self._fd: int | None = None
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> ExperimentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._busy(read_holder(self.path.parent)) from None
            try:  # the file may have been removed by a releasing holder between our open and our lock
                if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                    break
            except FileNotFoundError:
                pass
            os.close(fd)
        previous = read_holder(self.path.parent)
        if previous is not None and previous.host != socket.gethostname() and live_holder(self.path.parent):
            os.close(fd)  # another host's run, alive by its heartbeat: flock may not reach across hosts
            raise self._busy(previous)
        self.taken_over = previous  # a dead holder's record (killed hard): its lock is ours now
        self._fd = fd
        self._started = time.strftime("%Y-%m-%d %H:%M:%S")
        self._write()
        self._beat = threading.Thread(target=self._heartbeat, name="paw-lock-heartbeat", daemon=True)
        self._beat.start()

    def _busy(self, holder: Holder | None) -> PawError:
        who = holder.describe() if holder else "another process"
        return PawError(
            f"{self.path.parent}: the experiment is being written by {who}; wait for it to finish or stop it "
            "(one writer per experiment)"
        )

    def _write(self) -> None:
        record = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": self.command,
            "started": self._started,
            "heartbeat": time.time(),
        }
        data = json.dumps(record).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        os.fsync(self._fd)

    def _heartbeat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                self._write()
            except OSError:  # the experiment dir was removed under us: nothing left to guard
                return

    def release(self) -> None:
        if self._fd is None:
            return
        self._stop.set()
        if self._beat is not None:
            self._beat.join(timeout=5)
        try:
            self.path.unlink(missing_ok=True)  # while still locked: no one can lock the old file after us
        finally:
            os.close(self._fd)
            self._fd = None
