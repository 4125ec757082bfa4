"""Multi-process set-up checks, run before any model is loaded: the launcher (torchrun / accelerate launch) owns
the processes; paw only reads their environment and refuses configurations that cannot work.

- ``training.global_batch_size``: the batch per optimizer step over all processes; the per-device micro-batch
  is derived as global / (processes × gradient_accumulation_steps), so one config keeps its recipe from 1 GPU to
  N. A global batch the processes cannot share evenly is an error.
- ``training.deepspeed`` (a ZeRO config, e.g. ``configs/deepspeed/zero2.json``) needs the file and the package.
- FSDP (``training.fsdp`` or an accelerate FSDP config) needs CUDA GPUs.
- 8-bit and paged optimizers (``training.optim: adamw_bnb_8bit``, ``paged_adamw_8bit``, ...) run in bitsandbytes
  on CUDA.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from paw.errors import PawError


def per_device_batch(global_batch: int | None, per_device: int, accumulation: int, processes: int) -> int:
    """The micro-batch each process runs; with a global batch set, derived from it (exactly)."""
    if global_batch is None:
        return per_device
    share = processes * accumulation
    if global_batch % share:
        raise PawError(
            f"training.global_batch_size {global_batch} cannot be split over {processes} process(es) × "
            f"{accumulation} accumulation step(s); use a multiple of {share}"
        )
    return global_batch // share


def check_launch(deepspeed: str | None, fsdp: object, cuda: bool, optim: str | None = None) -> None:
    """Refuse DeepSpeed without its package or config file, FSDP without GPUs, bitsandbytes optimizers without
    CUDA or the package."""
    if optim and ("8bit" in optim or "bnb" in optim or optim.startswith("paged_")):
        if not cuda:
            raise PawError(
                f"training.optim '{optim}' runs in bitsandbytes on CUDA; this machine has none (use adamw_torch)"
            )
        if importlib.util.find_spec("bitsandbytes") is None:
            raise PawError(f"training.optim '{optim}' needs bitsandbytes: pip install 'paw[qlora]'")
    if deepspeed:
        if not Path(deepspeed).is_file():
            raise PawError(f"training.deepspeed: {deepspeed}: file not found (see configs/deepspeed/)")
        if importlib.util.find_spec("deepspeed") is None:
            raise PawError(
                "training.deepspeed needs DeepSpeed: pip install deepspeed (on a machine with CUDA)"
            )
        if not cuda:
            raise PawError("training.deepspeed: DeepSpeed ZeRO needs CUDA GPUs; this machine has none")
    uses_fsdp = bool(fsdp) or os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"
    if uses_fsdp and not cuda:
        raise PawError(
            "FSDP needs CUDA GPUs (paw shards with torch FSDP through accelerate); this machine has none. "
            "Use data parallel (torchrun / accelerate launch without an FSDP config) on CPU"
        )
