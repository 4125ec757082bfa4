"""Where paw caches what it builds locally (tiny models, synthetic datasets): ``$PAW_CACHE_DIR`` or ``~/.cache/paw``."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("PAW_CACHE_DIR") or Path.home() / ".cache" / "paw").expanduser()
