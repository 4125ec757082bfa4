"""What identifies a base model's weights: a content hash of a local dir, else its name, options and builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paw.config.schema import ModelConfig


def model_identity(model: ModelConfig, models_dir: str | None) -> dict[str, Any]:
    """The model section as configured, plus the built-in builder's version or a local dir's content hash."""
    from paw.models import shape, tiny
    from paw.models.resolve import resolve_model
    from paw.utils.io import dir_fingerprint

    resolved = resolve_model(model.name_or_path, models_dir, build_tiny=False)
    identity: dict[str, Any] = model.model_dump(mode="json")
    if resolved.kind == "tiny":
        identity["built_in"] = f"tiny-v{tiny.TINY_VERSION}"
    elif resolved.kind == "shape":
        identity["built_in"] = f"shape-v{shape.SHAPE_VERSION}"
    elif Path(resolved.location).is_dir():
        identity["content"] = dir_fingerprint(resolved.location)
    return identity
