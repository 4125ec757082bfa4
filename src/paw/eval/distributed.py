"""Data-parallel evaluation helpers: with ``accelerate launch`` / ``torchrun`` each rank scores a slice of the
documents and rank 0 gathers every per-example result. In one process these are identities."""

from __future__ import annotations

from typing import Any

from paw.utils.processes import local_rank, rank, world_size


def shard(items: list[Any]) -> list[Any]:
    """This rank's items: every world_size-th, starting at its rank (balanced across sorted lengths)."""
    return items if world_size() == 1 else items[rank() :: world_size()]


def ensure_process_group() -> None:
    """The default process group (NCCL on GPUs, each rank on its own device; gloo on CPUs), once."""
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        if torch.cuda.is_available():  # NCCL's object collectives run on the current device: this rank's own
            torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")


def gather(items: list[Any]) -> list[Any]:
    """All ranks' items, concatenated, on every rank."""
    if world_size() == 1:
        return items
    import torch.distributed as dist

    ensure_process_group()
    parts: list[list[Any] | None] = [None] * world_size()
    dist.all_gather_object(parts, items)
    return [item for part in parts for item in (part or [])]


def sum_int(value: int) -> int:
    if world_size() == 1:
        return value
    return sum(gather([value]))
