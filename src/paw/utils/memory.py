"""Peak memory of one stretch of work in a long-lived process: GPU via torch's peak counters, host RAM via
Linux's resettable high-water mark (writing 5 to ``/proc/self/clear_refs`` resets ``VmHWM``)."""

from __future__ import annotations

import re
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _hwm_mib() -> float | None:
    try:
        match = re.search(r"VmHWM:\s+(\d+) kB", _STATUS.read_text())
    except OSError:
        return None
    return int(match.group(1)) / 1024 if match else None


def reset_peaks() -> bool:
    """Start a new measurement; returns False where host peaks cannot be reset (then peaks are process-wide)."""
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def peaks(resettable: bool) -> dict[str, float | None]:
    """Peak host RSS (MiB) since ``reset_peaks`` (or of the process, when not resettable) and peak GPU memory."""
    gpu = None
    if "torch" in sys.modules:
        import torch

        if torch.cuda.is_available():
            gpu = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    host = _hwm_mib() if resettable else None
    if host is None:
        host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"peak_rss_mib": round(host, 1), "peak_gpu_mib": gpu, "rss_is_process_peak": not resettable}
