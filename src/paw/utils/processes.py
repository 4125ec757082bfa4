"""Which process this is, from the environment the launcher (torchrun / accelerate launch) sets: the one place
paw reads WORLD_SIZE, RANK and LOCAL_RANK. Alone, a process is rank 0 of 1."""

from __future__ import annotations

import os


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """Rank 0: the process that writes experiments, reports and results."""
    return rank() == 0
