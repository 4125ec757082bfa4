"""``align`` (LoRASuite-style): carry ΔW through residual-stream maps fitted from shared-vocabulary embeddings, and
through pairings of MLP neurons and attention heads.

With ``x_s ≈ N x_t`` (target residual → source) and ``M`` the source → target map:
- modules reading the residual stream (q/k/v/gate/up): ``ΔW_t = ΔW_s N``, so ``A_t = A_s N``;
- modules writing it (o/down): ``ΔW_t = M ΔW_s``, so ``B_t = M B_s``.
A module's other side — MLP neurons (gate/up out, down in) or attention heads (q/k/v out, o in) — is carried by
the pairing ``P`` of paw/transfer/inner_map.py (``B_t = P B_s``, or ``A_t = A_s Pᵀ``), so two models that order
or count their neurons and heads differently, or size their heads differently (``head_dim``), still line up.
"""

from __future__ import annotations

from typing import Any

READS_RESIDUAL = ("q", "k", "v", "gate", "up")
GROUP = {"gate": "mlp", "up": "mlp", "down": "mlp", "q": "query", "o": "output", "k": "kv", "v": "kv"}


def prepare(store_s: Any, store_t: Any, options: Any = None) -> dict[str, Any]:
    """The residual-stream maps, fitted once from the shared vocabulary's embeddings."""
    from paw.transfer.residual_map import fit_maps

    M, N, shared = fit_maps(store_s, store_t)
    return {
        "M": M,
        "N": N,
        "shared_tokens": len(shared.source_ids),
        "ambiguous_tokens": shared.ambiguous,
        "stores": (store_s, store_t),
        "inner_maps": {},  # (source layer, target layer, group) -> (P, mean similarity), filled as asked
    }


def _inner(kind: str, context: dict[str, Any]) -> Any:
    """The pairing of ``kind``'s neurons or heads between the unit's layers."""
    from paw.transfer.inner_map import head_map, neuron_map

    layers = (context["source_unit"].layer, context["target_unit"].layer)
    key = (*layers, GROUP[kind])
    stores, N = context["stores"], context["N"]
    if key not in context["inner_maps"]:
        if GROUP[kind] == "mlp":
            context["inner_maps"][key] = neuron_map(*stores, *layers, N)
        else:
            context["inner_maps"][key] = head_map(*stores, *layers, N, kind)
    return context["inner_maps"][key][0]


def frame(kind: str, U_s: Any, V_s: Any, context: dict[str, Any]) -> tuple[Any, Any]:
    """The source bases in the target's frame: the residual side through M (Ũ_s = M U_s for o/down, Ṽ_s = M V_s for
    the others), the neuron or head side through P."""
    P = _inner(kind, context)
    if kind in READS_RESIDUAL:
        return P @ U_s, context["M"] @ V_s
    return context["M"] @ U_s, P @ V_s


def transfer_unit(A: Any, B: Any, bases: dict[str, Any]) -> tuple[Any, Any]:
    kind = bases["kind"]
    P = _inner(kind, bases)
    if kind in READS_RESIDUAL:
        return A @ bases["N"], P @ B
    return A @ P.T, bases["M"] @ B
