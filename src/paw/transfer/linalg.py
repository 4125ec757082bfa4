"""Linear algebra of adapter transfer, on factors (never a full-size SVD of ΔW).

- ``top_singular(W, k)``: top-k singular vectors by randomised SVD (``torch.svd_lowrank``), each pair's sign
  fixed so that the largest-magnitude entry of ``u`` is positive (SVD signs are arbitrary; two models must use
  one convention for ``U_t U_sᵀ`` to mean anything).
- ``rebalance(B, A, r)``: ``B·A`` rewritten as balanced factors of rank ≤ r: QR of B and Aᵀ, SVD of the small
  ``R_B R_Aᵀ``, keep the top r: ``B' = Q_B U √S``, ``A' = √S Vᵀ Q_Aᵀ``.
- ``subspace_similarity(U_s, U_t)``: ``φ = ‖Ũ_sᵀ U_t‖²_F / k`` ∈ [0, 1] with ``Ũ_s`` the source basis embedded in
  the target space (coordinates zero-padded or cut when sizes differ) and re-orthonormalised. Two random
  k-dim subspaces of R^d give ``E[φ] ≈ k/d`` (the chance level); identical subspaces give 1.
- ``ridge_fit(X, Y, ridge)``: the linear map ``W`` with ``X Wᵀ ≈ Y`` (rows paired), by ridge least squares in
  float64, the penalty a fraction ``ridge`` of X's mean energy per dimension (so it scales with the data).
"""

from __future__ import annotations

from typing import Any


def top_singular(weight: Any, k: int, seed: int = 0) -> tuple[Any, Any]:
    """(U_k, V_k): top-k left/right singular vectors of ``weight`` (out × in), signs fixed."""
    import torch

    k = max(1, min(k, *weight.shape))
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    try:
        U, _, V = torch.svd_lowrank(weight, q=min(k + 8, *weight.shape), niter=4)
    finally:
        torch.random.set_rng_state(generator_state)
    U, V = U[:, :k], V[:, :k]
    signs = torch.sign(U.gather(0, U.abs().argmax(dim=0, keepdim=True))).squeeze(0)
    signs[signs == 0] = 1
    return U * signs, V * signs


def rank_for_energy(weight: Any, fraction: float, cap: int) -> int:
    """Smallest k whose top-k singular values hold ``fraction`` of the energy Σσ² among the top ``cap``."""
    import torch

    q = min(cap, *weight.shape)
    _, S, _ = torch.svd_lowrank(weight, q=q, niter=2)
    energy = torch.cumsum(S**2, 0) / (S**2).sum()
    return int(torch.searchsorted(energy, torch.tensor(fraction)).item()) + 1


def embed_rows(matrix: Any, size: int) -> Any:
    """Zero-pad or cut the rows of ``matrix`` to ``size`` (coordinate embedding between widths)."""
    import torch

    if matrix.shape[0] == size:
        return matrix
    if matrix.shape[0] > size:
        return matrix[:size]
    return torch.cat([matrix, torch.zeros(size - matrix.shape[0], matrix.shape[1])], dim=0)


def subspace_similarity(source_basis: Any, target_basis: Any) -> float:
    """φ = ‖Ũ_sᵀ U_t‖²_F / k (see module docstring); both bases have k orthonormal columns."""
    import torch

    embedded, _ = torch.linalg.qr(embed_rows(source_basis, target_basis.shape[0]))
    k = target_basis.shape[1]
    return float((embedded.T @ target_basis).pow(2).sum() / k)


def rebalance(B: Any, A: Any, r: int) -> tuple[Any, Any]:
    """Balanced rank-≤r factors of ``B·A`` (exact when rank(B·A) ≤ r)."""
    import torch

    q_b, r_b = torch.linalg.qr(B)
    q_a, r_a = torch.linalg.qr(A.T)
    U, S, Vh = torch.linalg.svd(r_b @ r_a.T)
    keep = min(r, S.shape[0])
    root = S[:keep].sqrt()
    return q_b @ (U[:, :keep] * root), (root[:, None] * Vh[:keep]) @ q_a.T


def factor_norm(B: Any, A: Any) -> float:
    """‖B·A‖_F from the factors: sqrt(trace((BᵀB)(AAᵀ)))."""
    return float(((B.T @ B) * (A @ A.T)).sum().clamp_min(0).sqrt())


def ridge_fit(X: Any, Y: Any, ridge: float) -> Any:
    """W (d_Y × d_X) minimising ‖X Wᵀ − Y‖² + λ‖W‖², λ = ``ridge`` × X's mean energy per dimension."""
    import torch

    X, Y = X.double(), Y.double()
    gram = X.T @ X
    lam = ridge * gram.trace() / gram.shape[0]
    return torch.linalg.solve(gram + lam * torch.eye(gram.shape[0], dtype=gram.dtype), X.T @ Y).T.float()
