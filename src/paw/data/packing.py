"""Packing for SFT: several examples per row, without attention across examples.

Examples are placed into rows of at most ``max_length`` tokens by best-fit decreasing (longest first, each into
the fullest row it fits), so rows are nearly full and far fewer pad tokens are computed. Each example keeps its
own positions (``position_ids`` restart at 0) and the first label of every example is masked, so no token is
trained to predict across a boundary. Which attention mask stops examples from seeing each other depends on the
kernel (see ``PackedCollator``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

IGNORE_INDEX = -100


def pack_examples(examples: list[dict[str, list[int]]], max_length: int) -> list[dict[str, list[int]]]:
    """Rows ``{input_ids, labels, position_ids}``, each holding whole examples (best-fit decreasing)."""
    order = sorted(range(len(examples)), key=lambda i: -len(examples[i]["input_ids"]))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        size = len(examples[i]["input_ids"])
        best = min((r for r in range(len(rows)) if room[r] >= size), key=lambda r: room[r], default=None)
        if best is None:
            rows.append([i])
            room.append(max_length - size)
        else:
            rows[best].append(i)
            room[best] -= size
    packed = []
    for members in rows:
        ids, labels, positions = [], [], []
        for i in sorted(members):  # data order inside a row
            example = examples[i]
            ids += example["input_ids"]
            labels += [IGNORE_INDEX, *example["labels"][1:]]
            positions += list(range(len(example["input_ids"])))
        packed.append({"input_ids": ids, "labels": labels, "position_ids": positions})
    return packed


@dataclass
class PackedCollator:
    """Batches of packed rows.

    - ``flash_attention_2``: padding-free — the batch is one flattened row and FlashAttention's variable-length
      kernel reads the example boundaries from the restarting ``position_ids``;
    - ``sdpa``/``eager``: rows padded to the batch's longest, with an additive 4D mask ``[B, 1, L, L]`` that is
      block-diagonal and causal (a token sees only earlier tokens of its own example). Padding queries look at
      position 0 only, so the mask's diagonal marks the real tokens.
    """

    pad_token_id: int
    attention: str = "sdpa"
    mask_dtype: Any = None

    def __call__(self, rows: list[dict[str, list[int]]]) -> dict[str, Any]:
        import torch

        rows = [
            row if "position_ids" in row else {**row, "position_ids": list(range(len(row["input_ids"])))}
            for row in rows
        ]
        if self.attention == "flash_attention_2":
            flat = {k: [v for row in rows for v in row[k]] for k in ("input_ids", "labels", "position_ids")}
            return {k: torch.tensor([v]) for k, v in flat.items()}
        length = max(len(row["input_ids"]) for row in rows)
        ids = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), length), IGNORE_INDEX, dtype=torch.long)
        positions = torch.zeros((len(rows), length), dtype=torch.long)
        segment = torch.full((len(rows), length), -1, dtype=torch.long)
        for b, row in enumerate(rows):
            n = len(row["input_ids"])
            ids[b, :n] = torch.tensor(row["input_ids"])
            labels[b, :n] = torch.tensor(row["labels"])
            positions[b, :n] = torch.tensor(row["position_ids"])
            segment[b, :n] = torch.cumsum(torch.tensor(row["position_ids"]) == 0, 0)
        causal = torch.ones(length, length, dtype=torch.bool).tril()
        same = segment[:, :, None] == segment[:, None, :]
        allowed = causal & same & (segment[:, :, None] >= 0)
        allowed[:, :, 0] |= segment < 0  # padding queries: position 0 only (no empty rows, no NaN)
        dtype = self.mask_dtype or torch.float32
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        return {
            "input_ids": ids,
            "labels": labels,
            "position_ids": positions,
            "attention_mask": mask[:, None],
        }


def real_tokens(inputs: dict[str, Any]) -> Any:
    """Tokens in a batch that are not padding (for tokens/s), whichever form ``PackedCollator`` produced."""
    mask = inputs.get("attention_mask")
    if mask is not None and mask.dim() == 4:
        return (mask.diagonal(dim1=-2, dim2=-1) == 0).sum()
    return inputs["input_ids"].numel()
