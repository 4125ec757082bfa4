"""Which MLP neuron of the target plays the part of which neuron of the source, for ``align``.

Two independently trained models order their MLP neurons arbitrarily (and may have different numbers of them).
A neuron is its row of the gate and up projections, a function of the residual stream; with ``N`` the residual
map (``x_s ≈ N x_t``), source neuron i seen from the target's residual stream is ``g_i N`` (and ``u_i N``). Neurons
are paired by the cosine similarity of ``[g N, u N]`` with the target's ``[g, u]``: a one-to-one assignment that
maximises the total (the Hungarian algorithm, as LoRASuite pairs attention heads) up to ``HUNGARIAN_MAX`` neurons a
side, else each target neuron takes its most similar source neuron. The map ``P`` (I_t × I_s) has a one where a
target neuron takes a source neuron: the gate/up update ``ΔW_t = P ΔW_s N``, the down update ``M ΔW_s Pᵀ``;
elementwise activations commute with a permutation, so between a model and a copy with shuffled neurons this is
exact.
"""

from __future__ import annotations

from typing import Any

HUNGARIAN_MAX = 8192


def neuron_rows(store: Any, layer: int) -> Any:
    """Each neuron's gate and up rows side by side (I × 2d)."""
    import torch

    from paw.transfer.mapping import Unit, base_weight

    return torch.cat([base_weight(store, Unit(layer, "gate")), base_weight(store, Unit(layer, "up"))], dim=1)


def neuron_map(store_s: Any, store_t: Any, layer_s: int, layer_t: int, N: Any) -> tuple[Any, float]:
    """``P`` (I_t × I_s, zero-one) and the mean cosine similarity of the pairs it makes."""
    import torch

    rows_s, rows_t = neuron_rows(store_s, layer_s), neuron_rows(store_t, layer_t)
    d_s = rows_s.shape[1] // 2
    seen = torch.cat(
        [rows_s[:, :d_s] @ N, rows_s[:, d_s:] @ N], dim=1
    )  # source neurons in the target's frame
    similarity = torch.nn.functional.normalize(rows_t, dim=1) @ torch.nn.functional.normalize(seen, dim=1).T
    P = torch.zeros_like(similarity)
    if max(similarity.shape) <= HUNGARIAN_MAX:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(similarity.numpy(), maximize=True)
        rows, cols = torch.as_tensor(rows), torch.as_tensor(cols)
    else:
        rows, cols = torch.arange(similarity.shape[0]), similarity.argmax(dim=1)
    P[rows, cols] = 1.0
    return P, float(similarity[rows, cols].mean())
