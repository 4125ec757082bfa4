"""How the processes of a launched pipeline (``torchrun`` / ``accelerate launch``) agree on what to do.

Rank 0 decides and writes every file; the other ranks follow what it publishes. Messages go through the
launcher's key-value store (the c10d TCPStore that torchrun's agent hosts at MASTER_ADDR:MASTER_PORT; under another
env:// launcher, the one rank 0 hosts for the process group), never through a collective: a transfer step on rank 0 can outlast an NCCL timeout while the others wait, and a rank
that failed must never be waited for inside a collective. A failing rank posts its reason before it exits, so
rank 0 (stopped by the launcher, or by a closed connection in the next collective) records why, once.

Alone, a process is rank 0 of 1 and every call here is an identity.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, NoReturn, TypeVar

from paw.errors import PawError
from paw.utils.processes import rank, world_size

T = TypeVar("T")
_POLL_S = 0.1
_CONNECT = timedelta(minutes=5)


class PeerStopped(PawError):
    """This rank stops because another one failed; that one's message is shown (once) by rank 0."""

    quiet = True

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_of(err: BaseException) -> int:
    """The exit code the CLI gives ``err``: PawError's own, 128+signal for an interruption, else 1."""
    code = getattr(err, "exit_code", None)
    if isinstance(code, int):
        return code
    return 130 if isinstance(err, KeyboardInterrupt) else 1


def reason_of(err: BaseException) -> str:
    """The one-line reason recorded for ``err``: a PawError's own message, else ``Type: message``."""
    return str(err) if isinstance(err, PawError) else f"{type(err).__name__}: {err}"


class Ranks:
    """This process's place in the launch, and the store the ranks talk through."""

    def __init__(self) -> None:
        self.size = world_size()
        self.rank = rank()
        self._store: Any = None
        run = os.environ.get("TORCHELASTIC_RUN_ID", "run")
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")
        self._prefix = (
            f"paw/pipeline/{run}/{restart}/"  # a restarted worker group starts a fresh conversation
        )

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def many(self) -> bool:
        return self.size > 1

    def _kv(self):
        if self._store is None:
            import torch.distributed as dist

            if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
                # not torchrun's agent: the store is the one rank 0 hosts for the process group
                from paw.eval.distributed import ensure_process_group

                ensure_process_group()

            try:
                address, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
            except (KeyError, ValueError):
                raise PawError(
                    f"WORLD_SIZE={self.size} but MASTER_ADDR/MASTER_PORT are not set: launch paw pipeline with "
                    "torchrun or accelerate launch"
                ) from None
            self._store = dist.TCPStore(address, port, is_master=False, timeout=_CONNECT)
        return self._store

    def _set(self, key: str, value: dict[str, Any]) -> None:
        self._kv().set(self._prefix + key, json.dumps(value, default=str))

    def _get(self, key: str) -> dict[str, Any] | None:
        store, full = self._kv(), self._prefix + key
        return json.loads(store.get(full)) if store.check([full]) else None

    def share(self, name: str, work: Callable[[], T]) -> T:
        """Run ``work`` on rank 0 and hand its (JSON) result to every rank; the others wait for it.
        Rank 0's failure reaches the others through :meth:`abort`."""
        if not self.many:
            return work()
        if self.main:
            value = work()
            self._set(f"value/{name}", {"value": value})
            return value
        return self._wait(f"value/{name}")["value"]

    def sync(self, name: str) -> None:
        """The other ranks wait here until rank 0 has reached the same point."""
        self.share(name, lambda: None)

    def _wait(self, key: str) -> dict[str, Any]:
        while True:
            found = self._get(key)
            if found is not None:
                return found
            stopped = self._get("abort")
            if stopped is not None:
                raise PeerStopped(stopped["message"], stopped["exit_code"])
            time.sleep(_POLL_S)

    def shield(self) -> None:
        """Rank 0 is stopping: ignore SIGINT/SIGTERM from here to exit, so the launcher stopping the other ranks
        cannot cut rank 0's record or its one error line (kept ignored after ``interruptible``)."""
        if self.many and self.main:
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, signal.SIG_IGN)

    def abort(self, err: BaseException) -> None:
        """Rank 0 failed: the ranks waiting on it stop with its exit code (its message is printed by rank 0)."""
        if self.many and self.main and not isinstance(err, PeerStopped):
            self.shield()
            self._set("abort", {"message": str(err), "exit_code": exit_code_of(err)})

    def fail_alike(self, err: PawError) -> NoReturn:
        """Every rank read the same arguments and files and failed alike: rank 0 says it, once; the others wait
        (up to a minute) for its abort and stop quietly."""
        if self.main or not self.many:
            self.abort(err)
            raise err
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self._get("abort") is None:
            time.sleep(_POLL_S)
        raise PeerStopped(str(err), err.exit_code) from err

    def fail(self, err: BaseException) -> None:
        """A non-zero rank failed: post why, for rank 0 to record once the launcher stops it. (An interruption
        is not posted: Ctrl-C reaches every rank, and rank 0 records it as resumable.)"""
        if self.many and not self.main and not isinstance(err, (PeerStopped, KeyboardInterrupt)):
            self._set(f"failed/{self.rank}", {"message": reason_of(err), "exit_code": exit_code_of(err)})

    def peer_failure(self) -> tuple[str, int] | None:
        """(``rank k: reason``, exit code) of the first other rank that posted a failure; None if none did."""
        if not self.many:
            return None
        for other in range(1, self.size):
            found = self._get(f"failed/{other}")
            if found is not None:
                return f"rank {other}: {found['message']}", found["exit_code"]
        return None
