"""The lifecycle every run that writes an experiment shares (paw train, paw pipeline): its result, its log
handlers, SIGINT/SIGTERM turned into a resumable interruption, and a failure recorded before it propagates."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paw.errors import raise_interrupted
from paw.experiment.layout import Experiment
from paw.experiment.metadata import now, update_metadata


@dataclass
class RunResult:
    """What a run returns: its experiment (None for a dry run), final status and report."""

    experiment: Experiment | None
    status: str
    report: dict[str, Any] = field(default_factory=dict)


@contextmanager
def interruptible(enabled: bool = True) -> Iterator[None]:
    """SIGINT and SIGTERM raise KeyboardInterrupt (with ``signum``) inside the block, so the run can record a
    resumable state; the previous handlers come back after it, unless the block chose to ignore the signal (a
    launched pipeline's rank 0 recording a failure while the launcher stops every rank: it must still print it)."""
    signals = (signal.SIGINT, signal.SIGTERM) if enabled else ()
    previous = {sig: signal.signal(sig, raise_interrupted) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            if signal.getsignal(sig) is not signal.SIG_IGN:
                signal.signal(sig, handler)


@contextmanager
def attached(*pairs: tuple[logging.Logger, logging.Handler]) -> Iterator[None]:
    """Log handlers attached for the block, then removed and closed (their files flushed)."""
    for logger, handler in pairs:
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, handler in pairs:
            logger.removeHandler(handler)
            handler.close()


def file_handler(path: Path) -> logging.Handler:
    """A run's log file: every line with its time and level."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    return handler


def console_handler(level: int = logging.INFO) -> logging.Handler:
    """Plain message lines on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    return handler


def mark_failed(metadata_file: Path, err: BaseException, **extra: Any) -> None:
    """Record a failure in metadata.json (the caller re-raises)."""
    update_metadata(
        metadata_file, status="failed", finished=now(), error=f"{type(err).__name__}: {err}", **extra
    )
