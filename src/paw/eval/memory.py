"""How much memory a log-likelihood batch takes, so that ``--batch-size auto`` fills what is free and a fixed batch
size never holds more vocabulary logits than ``LOGITS_BUDGET``.

For one forward pass of B rows padded to L tokens with R read positions, a model of hidden size H, MLP width I,
h attention heads, vocabulary V and b bytes per value (the weights' dtype); without gradients only one layer's
activations are alive at a time:

    activations ≈ B·L·(4H + 3I)·b      a layer's input and residual, q/k/v/o, the MLP's gate, up and product
    attention   ≈ B·(h + 1)·L²·b       the scores of the attention kernel under a 4D mask, and the mask
    logits      ≈ R·V·b + C·V·4·2      the head at the read positions, then fp32 statistics C positions at a time
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paw.utils.hf_types import Model

LOGITS_BUDGET = 512 * 2**20  # a fixed batch is cut where its read positions' logits would take more than this
AUTO_SHARE = 0.5  # the share of free memory an automatic batch may take
AUTO_MAX_ROWS = 512
STATS_CHUNK = 256  # read positions whose fp32 log-probability statistics are computed at once


@dataclass(frozen=True)
class MemoryModel:
    hidden: int
    intermediate: int
    heads: int
    vocab: int
    value_bytes: int

    @classmethod
    def of(cls, model: Model) -> MemoryModel:
        config = model.config
        config = getattr(config, "text_config", None) or config
        hidden = config.hidden_size
        dtype = next(model.parameters()).dtype
        return cls(
            hidden=hidden,
            intermediate=getattr(config, "intermediate_size", None) or 4 * hidden,
            heads=getattr(config, "num_attention_heads", 1),
            vocab=config.vocab_size,
            value_bytes=dtype.itemsize if dtype.is_floating_point else 4,
        )

    def logits(self, reads: int) -> int:
        return reads * self.vocab * self.value_bytes + min(reads, STATS_CHUNK) * self.vocab * 4 * 2

    def batch(self, rows: int, length: int, reads: int) -> int:
        activations = rows * length * (4 * self.hidden + 3 * self.intermediate) * self.value_bytes
        attention = rows * (self.heads + 1) * length * length * self.value_bytes
        return activations + attention + self.logits(reads)


def free_bytes(device: Any) -> int:
    """Memory free for a batch: the GPU's free memory, or the host's available memory (Linux ``MemAvailable``)."""
    import torch

    if getattr(device, "type", str(device)) == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    import os

    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
