"""Checks on PEFT adapter dirs shared by training (init from an adapter) and evaluation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from paw.errors import PawError


def adapter_base(adapter: str | Path) -> str | None:
    """The base model an adapter was trained on, from its adapter_config.json."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")


def check_adapter_dir(adapter: str | Path, label: str = "--adapter") -> Path:
    path = Path(adapter)
    if not path.is_dir():
        raise PawError(f"{label}: {path} does not exist")
    if not (path / "adapter_config.json").is_file():
        raise PawError(f"{label}: {path} is not a PEFT adapter dir (no adapter_config.json)")
    return path


def check_all_keys_loaded(model: Any, adapter: Path, label: str = "--adapter") -> None:
    """peft only warns when adapter weights find no module; for evaluation that is a wrong result, so refuse."""
    from safetensors import safe_open

    weights = adapter / "adapter_model.safetensors"
    if not weights.is_file():
        raise PawError(f"{label} {adapter}: no adapter_model.safetensors (paw loads safetensors only)")
    with safe_open(str(weights), framework="pt") as handle:
        saved = list(handle.keys())
    loaded = {name.replace(".default", "") for name, _ in model.named_parameters()}
    missing = [key for key in saved if key not in loaded]
    if missing:
        model_type = getattr(model.config, "model_type", "the base model")
        raise PawError(
            f"{label} {adapter} does not fit this base model: {len(missing)} of its {len(saved)} tensors match no "
            f"module of {model_type} (first: {missing[0]}); evaluate it on the base it was trained on "
            f"({adapter_base(adapter)})"
        )
