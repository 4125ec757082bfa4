"""Atomic file writes (a reader never sees a half-written file), JSON reads and file digests."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp's 0600 would make shared results unreadable
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process umask (read without changing it where /proc allows)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def apply_umask(root: str | os.PathLike) -> Path:
    """Give ``root`` and everything under it the modes the user's umask gives new files and dirs. safetensors and
    temp-file writers create 0600 files, which would make a shared experiment or model unreadable to the team."""
    root = Path(root)
    mask = current_umask()
    for path in [root, *root.rglob("*")] if root.is_dir() else [root]:
        if path.is_symlink():
            continue
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
    return root


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON, atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_json_or_none(path: str | os.PathLike) -> Any:
    """``read_json``, or None where the file is missing or not valid JSON (records another run may have left)."""
    try:
        return read_json(path)
    except (OSError, ValueError):
        return None


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_dir(path: str | os.PathLike) -> None:
    """Flush a directory entry (after a rename) where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path: str | os.PathLike, label: str) -> Path:
    """Refuse, before any work, an output path that cannot be created: a file in the way, or a directory
    (the nearest one that exists) this user may not write in."""
    from paw.errors import PawError

    path = Path(path).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise PawError(f"{label} {path}: a file is in the way (a directory is written there)")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise PawError(f"{label} {path}: {existing} is a file, not a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PawError(f"{label} {path}: cannot write in {existing} (permission denied)")
    return path


def unused_dir(parent: str | os.PathLike, name: str) -> Path:
    """``parent/name``, or ``parent/name-2``, ``-3``, ... : the first that does not exist yet."""
    candidate, n = Path(parent) / name, 2
    while candidate.exists():
        candidate, n = Path(parent) / f"{name}-{n}", n + 1
    return candidate


def dir_fingerprint(path: str | Path | None) -> str | None:
    """A short hash of a local model/adapter dir: config files in full, weight files by name, size and first MiB."""
    if path is None or not Path(path).is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin", ".model") and file.is_file():
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                digest.update(handle.read() if file.suffix == ".json" else handle.read(2**20))
            digest.update(str(file.stat().st_size).encode())
    return digest.hexdigest()[:16]
