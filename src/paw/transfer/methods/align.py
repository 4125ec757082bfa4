"""``align`` (LoRASuite-style): carry ΔW through residual-stream maps fitted from shared-vocabulary embeddings, and
through a pairing of MLP neurons.

With ``x_s ≈ N x_t`` (target residual → source) and ``M`` the source → target map:
- modules reading the residual stream (q/k/v/gate/up): ``ΔW_t = ΔW_s N``, so ``A_t = A_s N``;
- modules writing it (o/down): ``ΔW_t = M ΔW_s``, so ``B_t = M B_s``.
The MLP's own side is carried by the neuron pairing ``P`` of paw/transfer/neuron_map.py (gate/up: ``B_t = P B_s``;
down: ``A_t = A_s Pᵀ``), so two models that order or count their neurons differently still line up. The attention
modules' other side (heads) must have the same size in both models; otherwise the unit is skipped with that
reason (head maps are not built).
"""

from __future__ import annotations

from typing import Any

from paw.transfer.methods import SkipUnit

READS_RESIDUAL = ("q", "k", "v", "gate", "up")
MLP_OWN_SIDE = {"gate": "out", "up": "out", "down": "in"}  # which side of the module is the MLP's neurons


def prepare(store_s: Any, store_t: Any) -> dict[str, Any]:
    """The residual-stream maps, fitted once from the shared vocabulary's embeddings."""
    from paw.transfer.residual_map import fit_maps

    M, N, shared = fit_maps(store_s, store_t)
    return {
        "M": M,
        "N": N,
        "shared_tokens": len(shared.source_ids),
        "ambiguous_tokens": shared.ambiguous,
        "stores": (store_s, store_t),
        "neuron_maps": {},  # (source layer, target layer) -> (P, mean cosine), filled as units ask
    }


def _neurons(context: dict[str, Any]) -> Any:
    from paw.transfer.neuron_map import neuron_map

    key = (context["source_unit"].layer, context["target_unit"].layer)
    if key not in context["neuron_maps"]:
        context["neuron_maps"][key] = neuron_map(*context["stores"], *key, context["N"])
    return context["neuron_maps"][key][0]


def frame(kind: str, U_s: Any, V_s: Any, context: dict[str, Any]) -> tuple[Any, Any]:
    """The source bases in the target's frame: the residual side through M (Ũ_s = M U_s for o/down, Ṽ_s = M V_s for
    the others), the MLP's neuron side through P."""
    if kind in READS_RESIDUAL:
        out = _neurons(context) @ U_s if kind in MLP_OWN_SIDE else U_s
        return out, context["M"] @ V_s
    inner = _neurons(context) @ V_s if kind in MLP_OWN_SIDE else V_s
    return context["M"] @ U_s, inner


def transfer_unit(A: Any, B: Any, bases: dict[str, Any]) -> tuple[Any, Any]:
    out_t, in_t = bases["target_shape"]
    kind = bases["kind"]
    if kind in READS_RESIDUAL:
        B_t = _neurons(bases) @ B if kind in MLP_OWN_SIDE else B.clone()
        if B_t.shape[0] != out_t:
            raise SkipUnit(
                f"align maps attention heads of one size only: output size {B.shape[0]} vs {out_t}"
            )
        return A @ bases["N"], B_t
    A_t = A @ _neurons(bases).T if kind in MLP_OWN_SIDE else A.clone()
    if A_t.shape[1] != in_t:
        raise SkipUnit(f"align maps attention heads of one size only: input size {A.shape[1]} vs {in_t}")
    return A_t, bases["M"] @ B
