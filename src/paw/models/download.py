"""``paw download``: fetch a model from the Hugging Face hub into ``<models_dir>/<name>``, where alias resolution
finds it first (``paths.models_dir``), so later runs need no network.

``huggingface_hub.snapshot_download`` resumes interrupted downloads and skips finished files. By default only
safetensors weights are fetched (with configs and tokenizer files); ``--allow-bin`` also takes pickled ``.bin``
weights, which paw never loads by itself. A token is read from the environment (``HF_TOKEN``) by the hub
library and is never written anywhere by paw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paw.errors import PawError

SAFE_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken", "*.md"]


def download_target(name: str, models_dir: str | Path) -> tuple[str, Path]:
    """(hub id, local dir) for an alias or a hub id: aliases land in ``<models_dir>/<alias>``, hub ids in
    ``<models_dir>/<repo name>`` — the places alias resolution looks."""
    from paw.models import shape, tiny
    from paw.models.resolve import aliases

    if name.startswith((tiny.PREFIX, shape.PREFIX)):
        raise PawError(f"{name} is built locally on first use; there is nothing to download")
    if name in aliases():
        return aliases()[name], Path(models_dir).expanduser() / name
    if name.count("/") == 1 and all(name.split("/")):
        return name, Path(models_dir).expanduser() / name.split("/")[1]
    from paw.utils.suggest import did_you_mean

    raise PawError(
        f"'{name}' is neither an alias{did_you_mean(name, aliases())} nor a hub id (org/name); see paw models"
    )


def download(
    name: str, models_dir: str | Path, revision: str | None = None, allow_bin: bool = False
) -> dict[str, Any]:
    """Download (or finish downloading) ``name`` into ``models_dir``; returns what was fetched and where."""
    from huggingface_hub import snapshot_download

    hub_id, target = download_target(name, models_dir)
    patterns = SAFE_PATTERNS + (["*.bin"] if allow_bin else [])
    try:
        path = snapshot_download(hub_id, revision=revision, local_dir=target, allow_patterns=patterns)
    except Exception as err:  # offline, gated, unknown repo: all user-facing
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PawError(
            f"could not download {hub_id}: {type(err).__name__}: {reason}. Where the hub is unreachable, copy the "
            f"model dir from a machine that has it to {target} (paw finds it there through paths.models_dir), or "
            "point model.name_or_path at any local copy"
        ) from None
    files = sorted(p.name for p in Path(path).iterdir() if p.is_file())
    if not any(f.endswith(".safetensors") for f in files) and not allow_bin:
        raise PawError(
            f"{hub_id} has no safetensors weights (only pickled .bin files?); paw loads safetensors only. "
            "Convert it, or pass --allow-bin to fetch the .bin files anyway"
        )
    return {"hub_id": hub_id, "path": str(path), "files": files}
