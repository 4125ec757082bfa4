"""Which MLP neuron and which attention head of the target plays the part of which of the source, for ``align``.

Two independently trained models order their MLP neurons and attention heads arbitrarily (and may have different
numbers of them). Seen from the residual stream, a neuron is its rows of the gate and up projections and a head
its block of rows of the query (or key and value) projection; with ``N`` the residual map (``x_s ≈ N x_t``), a
source row ``w`` seen from the target's residual stream is ``w N``. Units are paired by the cosine similarity of
their rows so seen with the target's: a one-to-one assignment that maximises the total (the Hungarian algorithm,
as LoRASuite pairs attention heads) up to ``HUNGARIAN_MAX`` a side, else each target unit takes its most similar
source unit. The pairing becomes a zero-one map ``P`` (target size × source size; a head's ``head_dim`` rows move
together, so heads pair only when ``head_dim`` is the same): the update of a module whose output is neurons or heads
is ``P ΔW_s N``, of one whose input is (down, o) ``M ΔW_s Pᵀ``. Elementwise activations and per-head attention
commute with such a permutation, so between a model and a copy with shuffled neurons and heads this is exact.
"""

from __future__ import annotations

from typing import Any

HUNGARIAN_MAX = 8192
QUERY_HEADS = ("q", "o")  # modules whose heads are the query heads; k and v have the key-value heads


def _rows(store: Any, layer: int, kinds: tuple[str, ...]) -> Any:
    import torch

    from paw.transfer.mapping import Unit, base_weight

    return torch.cat([base_weight(store, Unit(layer, kind)) for kind in kinds], dim=1)


def _pairing(similarity: Any) -> tuple[Any, Any]:
    """(target index, source index) pairs that maximise the summed similarity."""
    import torch

    if max(similarity.shape) <= HUNGARIAN_MAX:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(similarity.numpy(), maximize=True)
        return torch.as_tensor(rows), torch.as_tensor(cols)
    return torch.arange(similarity.shape[0]), similarity.argmax(dim=1)


def _map(units_s: Any, units_t: Any, N: Any, width: int) -> tuple[Any, float]:
    """``P`` for units of ``width`` rows each (units_*: (count·width) × (parts·d), one part per projection)."""
    import torch

    parts = units_s.shape[1] // N.shape[0]
    seen = torch.cat([chunk @ N for chunk in units_s.chunk(parts, dim=1)], dim=1)
    flat_s = seen.reshape(-1, width * seen.shape[1])
    flat_t = units_t.reshape(-1, width * units_t.shape[1])
    normalize = torch.nn.functional.normalize
    similarity = normalize(flat_t, dim=1) @ normalize(flat_s, dim=1).T
    rows, cols = _pairing(similarity)
    pairs = torch.zeros_like(similarity)
    pairs[rows, cols] = 1.0
    return torch.kron(pairs, torch.eye(width)), float(similarity[rows, cols].mean())


def neuron_map(store_s: Any, store_t: Any, layer_s: int, layer_t: int, N: Any) -> tuple[Any, float]:
    """``P`` (I_t × I_s) pairing MLP neurons by their gate and up rows, and the pairs' mean cosine similarity."""
    kinds = ("gate", "up")
    return _map(_rows(store_s, layer_s, kinds), _rows(store_t, layer_t, kinds), N, 1)


def head_dim(store: Any) -> int:
    config = store.config
    return config.get("head_dim") or config["hidden_size"] // config["num_attention_heads"]


def head_map(
    store_s: Any, store_t: Any, layer_s: int, layer_t: int, N: Any, kind: str
) -> tuple[Any, float] | None:
    """``P`` pairing the query heads (for q and o) or the key-value heads (k and v, by their key and value rows);
    None when the two models' heads differ in size."""
    width = head_dim(store_s)
    if width != head_dim(store_t):
        return None
    kinds = ("q",) if kind in QUERY_HEADS else ("k", "v")
    return _map(_rows(store_s, layer_s, kinds), _rows(store_t, layer_t, kinds), N, width)
