"""Where paw caches what it builds locally (tiny models, stand-ins, real tokenizers, synthetic datasets):
``$PAW_CACHE_DIR`` or ``~/.cache/paw``; and how a cached model dir is built without ever being seen half-written."""

from __future__ import annotations

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
    """Return ``target``, first building it into a staging dir beside it and renaming (safe under parallel use)."""
    if (target / marker).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        build(staging / "model")
        apply_umask(staging / "model")
        try:
            os.replace(staging / "model", target)
        except OSError:  # another process finished first: use its copy
            if not (target / marker).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
