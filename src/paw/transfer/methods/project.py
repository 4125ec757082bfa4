"""``project`` (LoRA-X, arXiv 2501.16559; Cross-LoRA, arXiv 2508.05232): move ΔW through the base weights'
dominant singular subspaces.

Same shapes: ΔW_t = U_t U_tᵀ · ΔW_s · V_t V_tᵀ, i.e. ``B_t = U_t (U_tᵀ B_s)``, ``A_t = (A_s V_t) V_tᵀ``.
Different shapes: express the update in the source weight's basis and re-embed it in the target's:
``B_t = U_{t,k} (U_{s,k}ᵀ B_s)``, ``A_t = (A_s V_{s,k}) V_{t,k}ᵀ``. U/V are the top-k singular vectors of the
source (s) and target (t) base weights of the module; the rank stays ≤ r (re-balanced by the caller).
"""

from __future__ import annotations

from typing import Any


def transfer_unit(A: Any, B: Any, bases: dict[str, Any]) -> tuple[Any, Any]:
    U_t, V_t = bases["U_t"], bases["V_t"]
    same = (B.shape[0], A.shape[1]) == bases["target_shape"]
    if same:
        return (A @ V_t) @ V_t.T, U_t @ (U_t.T @ B)
    U_s, V_s = bases["U_s"], bases["V_s"]
    return (A @ V_s) @ V_t.T, U_t @ (U_s.T @ B)
