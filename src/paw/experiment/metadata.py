"""``metadata.json``: status, times, git commit, package versions, hardware, seed.

Written atomically at every status change; a run killed hard stays ``running`` (never looks complete).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from paw.utils.io import atomic_write_json, read_json

PACKAGES = (
    "paw",
    "torch",
    "transformers",
    "peft",
    "trl",
    "accelerate",
    "datasets",
    "tokenizers",
    "safetensors",
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(path: str | Path) -> dict[str, Any] | None:
    """Commit and dirty flag of the git checkout holding ``path`` (None outside git)."""
    if shutil.which("git") is None:
        return None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=path,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError):
        return None
    return {"commit": commit, "dirty": bool(dirty)}


def hardware() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_count": os.cpu_count(),
    }
    try:
        pages, page_size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        info["memory_gb"] = round(pages * page_size / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        pass
    if "torch" in sys.modules:
        import torch

        info["cuda"] = torch.version.cuda
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def new_metadata(name: str, command: str, seed: int) -> dict[str, Any]:
    return {
        "name": name,
        "status": "running",
        "command": command,
        "created": now(),
        "started": now(),
        "finished": None,
        "seed": seed,
        "git": {"cwd": git_commit(Path.cwd()), "paw": git_commit(Path(__file__).parent)},
        "packages": package_versions(),
        "hardware": hardware(),
        "error": None,
    }


def update_metadata(path: str | Path, **changes: Any) -> dict[str, Any]:
    data = read_json(path) if Path(path).is_file() else {}
    data.update(changes)
    atomic_write_json(path, data)
    return data
