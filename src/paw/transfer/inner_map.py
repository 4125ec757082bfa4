"""Which MLP neuron and which attention head of the target plays the part of which of the source, for ``align``.

Two independently trained models order their MLP neurons and attention heads arbitrarily (and may have different
numbers of them). Seen from the residual stream, a neuron is its rows of the gate and up projections and a head
its block of rows of the query (or key and value) projection; with ``N`` the residual map (``x_s ≈ N x_t``), a
source row ``w`` seen from the target's residual stream is ``w N``. Units are paired by the similarity of their
rows so seen with the target's: a one-to-one assignment that maximises the total (the Hungarian algorithm, as
LoRASuite pairs attention heads, Gao et al. 2025) up to ``HUNGARIAN_MAX`` a side, else each target unit takes its
most similar source unit. The pairing becomes a map ``P`` (target size × source size): the update of a module
whose output is neurons or heads is ``P ΔW_s N``, of one whose input is (down, o) ``M ΔW_s Pᵀ``.

- Neurons, and heads of one size (``head_dim``): paired by the cosine similarity of their rows; ``P`` is zero-one
  (a head's rows move together). Elementwise activations and per-head attention commute with such a permutation,
  so between a model and a copy with shuffled neurons and heads this is exact.
- Heads of different sizes (Gemma-2-2B's 256 against Qwen2.5's 128): paired by the overlap of their row spaces
  (the mean squared cosine of the principal angles, in [0, 1]); each pair's block is the ridge least-squares map
  ``B`` with ``W_t[j] ≈ B W_s[i] N`` (query heads from their query rows; key-value heads from key and value rows
  together). The output projection reads what the value rows wrote, so its blocks are fitted on the value rows of
  the paired heads' key-value heads, inverted (``A_t = A_s B⁺``). Where the target head holds the source head
  in some of its coordinates (scaled, rotated) this recovers it exactly; between unrelated heads it is the best
  linear stand-in, and the gate judges the result.
"""

from __future__ import annotations

from typing import Any

from paw.transfer.linalg import ridge_fit

HUNGARIAN_MAX = 8192
RIDGE = 1e-4  # of the per-head least-squares blocks (heads of different sizes)
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

    seen = _seen(units_s, N)
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


def head_map(store_s: Any, store_t: Any, layer_s: int, layer_t: int, N: Any, kind: str) -> tuple[Any, float]:
    """``P`` for the heads ``kind`` reads or writes: the query heads (q, o) or the key-value heads (k, v, by their
    key and value rows), and the pairs' mean similarity."""
    width_s, width_t = head_dim(store_s), head_dim(store_t)
    kinds = ("q",) if kind in QUERY_HEADS else ("k", "v")
    units_s, units_t = _rows(store_s, layer_s, kinds), _rows(store_t, layer_t, kinds)
    if width_s == width_t:
        return _map(units_s, units_t, N, width_s)
    heads_s, heads_t = _seen(units_s, N).unflatten(0, (-1, width_s)), units_t.unflatten(0, (-1, width_t))
    rows, cols, similarity = _pair_spaces(heads_s, heads_t)
    if kind != "o":
        blocks = [
            ridge_fit(heads_s[i].T, heads_t[j].T, RIDGE)
            for j, i in zip(rows.tolist(), cols.tolist(), strict=True)
        ]
        return _block_map(rows, cols, blocks, heads_t.shape[0], heads_s.shape[0]), similarity
    # o reads the attention output: per query head, what its key-value head's value rows wrote
    import torch

    values_s = _seen(_rows(store_s, layer_s, ("v",)), N).unflatten(0, (-1, width_s))
    values_t = _rows(store_t, layer_t, ("v",)).unflatten(0, (-1, width_t))
    group_s = heads_s.shape[0] // values_s.shape[0]
    group_t = heads_t.shape[0] // values_t.shape[0]
    blocks = [
        torch.linalg.pinv(ridge_fit(values_s[i // group_s].T, values_t[j // group_t].T, RIDGE)).T
        for j, i in zip(rows.tolist(), cols.tolist(), strict=True)
    ]
    return _block_map(rows, cols, blocks, heads_t.shape[0], heads_s.shape[0]), similarity


def _seen(units_s: Any, N: Any) -> Any:
    """Source rows seen from the target's residual stream (each projection's part through ``N``)."""
    import torch

    parts = units_s.shape[1] // N.shape[0]
    return torch.cat([chunk @ N for chunk in units_s.chunk(parts, dim=1)], dim=1)


def _pair_spaces(heads_s: Any, heads_t: Any) -> tuple[Any, Any, float]:
    """Pairs of heads (count × width × features, widths differing) by the overlap of their row spaces."""
    import torch

    basis_s = torch.linalg.qr(heads_s.transpose(1, 2).double()).Q  # count_s × features × width_s
    basis_t = torch.linalg.qr(heads_t.transpose(1, 2).double()).Q
    cosines = torch.einsum("tfa,sfb->tsab", basis_t, basis_s)
    overlap = (cosines.pow(2).sum((-1, -2)) / min(heads_s.shape[1], heads_t.shape[1])).float()
    rows, cols = _pairing(overlap)
    return rows, cols, float(overlap[rows, cols].mean())


def _block_map(rows: Any, cols: Any, blocks: list[Any], count_t: int, count_s: int) -> Any:
    import torch

    width_t, width_s = blocks[0].shape
    P = torch.zeros(count_t * width_t, count_s * width_s)
    for j, i, block in zip(rows.tolist(), cols.tolist(), blocks, strict=True):
        P[j * width_t : (j + 1) * width_t, i * width_s : (i + 1) * width_s] = block
    return P
