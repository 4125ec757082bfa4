"""Where paw caches what it builds locally (tiny models, stand-ins, real tokenizers, synthetic datasets):
``$PAW_CACHE_DIR`` or ``~/.cache/paw``; and how a cached model dir is built without ever being seen half-written."""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from paw.utils.io import apply_umask


def cache_dir() -> Path:
    return Path(os.environ.get("PAW_CACHE_DIR") or Path.home() / ".cache" / "paw").expanduser()


def named_seed(name: str, seed: int) -> int:
    """A seed of a built-in model's own (a hash of its name and ``seed``): models built from one shared seed
    would draw the same numbers wherever their shapes agree."""
    return int.from_bytes(hashlib.sha256(f"{name}:{seed}".encode()).digest()[:4], "little")


def build_atomically(target: Path, build: Callable[[Path], object], marker: str = "config.json") -> Path:
    """Return ``target``, first building it into a staging dir beside it and renaming (safe under parallel use).
    The builder holds a lock on its staging dir, so a staging dir left by a killed build (its lock gone with its
    process) is removed by the next build beside it, and a live one is left alone."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        held = _hold(staging)
        try:
            build(staging / "model")
            apply_umask(staging / "model")
            try:
                os.replace(staging / "model", target)
            except OSError:  # another process finished first: use its copy
                if not (target / marker).is_file():
                    raise
        finally:
            os.close(held)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


STAGING_LOCK = ".building"


def _hold(staging: Path) -> int:
    """An open, exclusively ``flock``ed ``staging/.building``: the kernel releases it when this process dies. It
    is locked under another name first, so no one can find the file unlocked."""
    fresh = staging / f"{STAGING_LOCK}.new"
    fd = os.open(fresh, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.replace(fresh, staging / STAGING_LOCK)
    return fd


def _remove_abandoned(target: Path) -> None:
    """Remove the staging dirs beside ``target`` whose builder died (their lock can be taken); one without a lock
    file (being set up, or an older paw's) or with a live builder is left."""
    for staging in target.parent.glob(f".{target.name}-*"):
        try:
            fd = os.open(staging / STAGING_LOCK, os.O_RDWR)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue
        else:
            shutil.rmtree(staging, ignore_errors=True)
        finally:
            os.close(fd)
