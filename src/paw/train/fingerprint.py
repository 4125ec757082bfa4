"""What defines a training run, recorded at its start (``<experiment>/fingerprint.json``) and checked by ``--resume``.

A run resumed on other data bytes, another config, other base weights or tokenizer, or another paw version would
silently mix two runs in one adapter. The fingerprint holds the resolved config (flattened, so a difference can be
named), the sha256 of each data file, the base model's identity (content hash of a local dir: config and tokenizer
files in full, weights by name, size and first MiB; name and builder version of a built-in) and paw's version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from paw.config.schema import RunConfig
from paw.errors import PawError
from paw.utils.io import atomic_write_json, read_json_or_none

FILE = "fingerprint.json"
# Where a run is written and how it is watched: not what it computes.
NOT_DEFINING = ("experiment.", "tracking.", "paths.")


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}{key}."))
        return flat
    return {prefix[:-1]: value}


def run_fingerprint(config: RunConfig) -> dict[str, Any]:
    import paw
    from paw.data.digest import file_digest
    from paw.models.identity import model_identity

    resolved = yaml.safe_load(yaml.safe_dump(config.model_dump(mode="json")))
    flat = {k: v for k, v in _flatten(resolved).items() if not k.startswith(NOT_DEFINING)}
    data = {
        key: file_digest(value) for key in ("train_file", "val_file") if (value := getattr(config.data, key))
    }
    return {
        "config": flat,
        "data_sha256": data,
        "model": model_identity(config.model, config.paths.models_dir),
        "paw": paw.__version__,
    }


def record(exp_dir: Path, config: RunConfig) -> dict[str, Any]:
    fingerprint = run_fingerprint(config)
    atomic_write_json(Path(exp_dir) / FILE, fingerprint)
    return fingerprint


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def differences(before: dict[str, Any], now: dict[str, Any]) -> list[str]:
    """What changed between the recorded fingerprint and today's, one phrase each."""
    found = []
    old_cfg, new_cfg = before.get("config", {}), now.get("config", {})
    for key in sorted(set(old_cfg) | set(new_cfg)):
        if old_cfg.get(key) != new_cfg.get(key):
            found.append(f"config {key}: {_short(old_cfg.get(key))} → {_short(new_cfg.get(key))}")
    old_data, new_data = before.get("data_sha256", {}), now.get("data_sha256", {})
    for key in sorted(set(old_data) | set(new_data)):
        if old_data.get(key) != new_data.get(key):
            found.append(f"data.{key} bytes differ (sha256 {old_data.get(key)} → {new_data.get(key)})")
    if before.get("model") != now.get("model"):
        found.append("the base model's weights, tokenizer or config differ")
    if before.get("paw") != now.get("paw"):
        found.append(f"paw version {before.get('paw')} → {now.get('paw')}")
    return found


def check_resume(exp_dir: Path, config: RunConfig, allow_changes: bool) -> list[str]:
    """Refuse to resume a run whose defining inputs changed since it started (unless ``allow_changes``);
    return the changes (recorded in metadata by the caller), [] when none or when no fingerprint was recorded."""
    before = read_json_or_none(Path(exp_dir) / FILE)
    if before is None:
        return []  # an experiment of an older paw: nothing to compare against
    changes = differences(before, run_fingerprint(config))
    if changes and not allow_changes:
        listed = "; ".join(changes[:5]) + (f"; and {len(changes) - 5} more" if len(changes) > 5 else "")
        raise PawError(
            f"--resume {exp_dir}: the run's inputs changed since it started ({listed}); resuming would mix two "
            "runs in one adapter. Restore them, start a new experiment, or pass --resume-changed to continue "
            "anyway (recorded in metadata.json)"
        )
    return changes
