"""Checkpoint policy and atomic checkpoints.

A checkpoint is written into ``checkpoints/.staging/checkpoint-<step>``; ``checkpoint_info.json`` is written
last, and only then is the directory renamed to ``checkpoints/checkpoint-<step>`` (a rename is atomic on one
filesystem). So a ``checkpoint-<step>`` dir is always complete, whatever kills the process; leftovers in
``.staging`` are incomplete by definition and are removed on resume. The info file records each file's size and
sha256, so a checkpoint damaged later (a disk error, a bad copy, a truncated sync) is recognised on resume, which
then falls back to the newest intact one and says so.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paw.experiment.layout import CHECKPOINT_INFO as INFO_FILE
from paw.utils.io import apply_umask, atomic_write_json, fsync_dir, read_json_or_none, sha256_file

STAGING = ".staging"
_NAME = re.compile(r"^checkpoint-(\d+)$")


@dataclass(frozen=True)
class CheckpointPolicy:
    """Save after step ``s`` when ``s > start_step`` and ``(s - start_step) % every == 0``.

    The commonsense recipe (start_step 75, every 1) saves nothing in steps 1–75 and a checkpoint after each of
    steps 76–125. ``keep_last`` keeps only the newest N (None keeps all).
    """

    start_step: int = 0
    every: int | None = None
    keep_last: int | None = None

    def should_save(self, step: int) -> bool:
        return (
            self.every is not None and step > self.start_step and (step - self.start_step) % self.every == 0
        )

    def planned(self, max_steps: int) -> list[int]:
        return [s for s in range(1, max_steps + 1) if self.should_save(s)]


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints under ``root``, oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        match = _NAME.match(child.name)
        if match and child.is_dir() and (child / INFO_FILE).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def damage(checkpoint: str | Path) -> str | None:
    """What is wrong with a checkpoint's files against its info record (None: intact). Checkpoints of an older
    paw, whose record lists names only, are checked for presence."""
    checkpoint = Path(checkpoint)
    info = read_json_or_none(checkpoint / INFO_FILE)
    if not isinstance(info, dict) or "files" not in info:
        return f"{INFO_FILE} is unreadable"
    files = info["files"]
    for name, expected in files.items() if isinstance(files, dict) else ((n, None) for n in files):
        path = checkpoint / name
        if not path.is_file():
            return f"{name} is missing"
        if expected is None:
            continue
        if path.stat().st_size != expected["size"]:
            return f"{name} has {path.stat().st_size} bytes, {expected['size']} were written"
        if sha256_file(path) != expected["sha256"]:
            return f"{name} differs from what was written (sha256)"
    return None


def latest_intact(root: str | Path) -> tuple[Path | None, list[tuple[Path, str]]]:
    """The newest checkpoint whose files match their record, and the newer ones skipped with the reason."""
    skipped = []
    for _, path in reversed(list_checkpoints(root)):
        problem = damage(path)
        if problem is None:
            return path, skipped
        skipped.append((path, problem))
    return None, skipped


def clear_staging(root: str | Path) -> None:
    shutil.rmtree(Path(root) / STAGING, ignore_errors=True)


def staging_dir(root: str | Path) -> Path:
    return Path(root) / STAGING


def publish(root: str | Path, step: int, info: dict[str, Any]) -> Path:
    """Finish ``.staging/checkpoint-<step>``: write its info file, then rename it into place."""
    root = Path(root)
    staged = staging_dir(root) / f"checkpoint-{step}"
    files = {
        p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(staged.iterdir())
        if p.is_file()
    }
    atomic_write_json(staged / INFO_FILE, {"step": step, **info, "files": files})
    apply_umask(staged)
    final = root / f"checkpoint-{step}"
    if final.exists():  # re-saving a step after resume: replace the old copy
        shutil.rmtree(final)
    staged.rename(final)
    try:
        staging_dir(root).rmdir()  # nothing is left half-written: no empty .staging either
    except OSError:
        pass
    fsync_dir(root)
    return final


def prune(root: str | Path, keep_last: int | None) -> list[Path]:
    """Delete all but the newest ``keep_last`` complete checkpoints; returns what was removed."""
    if keep_last is None:
        return []
    removed = [path for _, path in list_checkpoints(root)[:-keep_last]]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed
