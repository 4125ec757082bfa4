"""The digest of a data file's bytes: what identifies the data a run read."""

from __future__ import annotations

from functools import cache

from paw.errors import PawError
from paw.utils.io import sha256_file


@cache
def file_digest(path: str) -> str:
    """sha256 (16 hex digits) of a data file's bytes; built-in ``paw-synth/`` names are hashed after generation."""
    from paw.data.builtin import resolve_data_file

    file = resolve_data_file(path)
    if not file.is_file():
        raise PawError(f"{path}: data file not found")
    return sha256_file(file)[:16]
