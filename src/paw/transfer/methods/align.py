"""``align`` (LoRASuite-style): carry ΔW through residual-stream maps fitted from shared-vocabulary embeddings.

With ``x_s ≈ N x_t`` (target residual → source) and ``M`` the source → target map:
- modules reading the residual stream (q/k/v/gate/up): ``ΔW_t = ΔW_s N``, so ``A_t = A_s N``;
- modules writing it (o/down): ``ΔW_t = M ΔW_s``, so ``B_t = M B_s``.
The module's other side (heads, MLP width) must have the same size in both models; otherwise the unit is
skipped with that reason (head/width maps are not built).
"""

from __future__ import annotations

from typing import Any

from paw.transfer.methods import SkipUnit

READS_RESIDUAL = ("q", "k", "v", "gate", "up")


def prepare(store_s: Any, store_t: Any) -> dict[str, Any]:
    """The residual-stream maps, fitted once from the shared vocabulary's embeddings."""
    from paw.transfer.residual_map import fit_maps

    M, N, shared = fit_maps(store_s, store_t)
    return {"M": M, "N": N, "shared_tokens": len(shared.source_ids), "ambiguous_tokens": shared.ambiguous}


def frame(kind: str, U_s: Any, V_s: Any, context: dict[str, Any]) -> tuple[Any, Any]:
    """The source bases in the target's frame: the side a module reads or writes the residual stream through is
    carried by M (Ũ_s = M U_s for o/down, Ṽ_s = M V_s for the others)."""
    if kind in READS_RESIDUAL:
        return U_s, context["M"] @ V_s
    return context["M"] @ U_s, V_s


def transfer_unit(A: Any, B: Any, bases: dict[str, Any]) -> tuple[Any, Any]:
    out_t, in_t = bases["target_shape"]
    if bases["kind"] in READS_RESIDUAL:
        if B.shape[0] != out_t:
            raise SkipUnit(f"align maps the residual side only: output size {B.shape[0]} vs {out_t}")
        return A @ bases["N"], B.clone()
    if A.shape[1] != in_t:
        raise SkipUnit(f"align maps the residual side only: input size {A.shape[1]} vs {in_t}")
    return A.clone(), bases["M"] @ B
