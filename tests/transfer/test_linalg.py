"""The transfer formulas on small hand-made cases with known answers."""

import torch

from paw.transfer import linalg
from paw.transfer.methods import direct, project


def _orthonormal(d, k, seed):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, k, generator=g))
    return q


def test_subspace_similarity_identity_orthogonal_and_chance():
    eye = torch.eye(8)
    assert linalg.subspace_similarity(eye[:, :3], eye[:, :3]) == 1.0
    assert linalg.subspace_similarity(eye[:, :3], eye[:, 3:6]) == 0.0
    # sign flips of basis vectors do not change a subspace
    assert abs(linalg.subspace_similarity(-eye[:, :3], eye[:, :3]) - 1.0) < 1e-6
    # random k-dim subspaces of R^d: E[phi] = k/d
    d, k = 256, 8
    phis = [
        linalg.subspace_similarity(_orthonormal(d, k, s), _orthonormal(d, k, 1000 + s)) for s in range(40)
    ]
    assert abs(sum(phis) / len(phis) - k / d) < 0.01


def test_top_singular_signs_are_canonical_and_consistent():
    w = torch.randn(20, 12, generator=torch.Generator().manual_seed(0))
    U, V = linalg.top_singular(w, 4)
    assert torch.all(U.gather(0, U.abs().argmax(0, keepdim=True)) > 0)
    S = torch.linalg.svdvals(w)[:4]
    u_ref, s_ref, vh_ref = torch.linalg.svd(w)
    best_rank4 = u_ref[:, :4] @ torch.diag(s_ref[:4]) @ vh_ref[:4]
    torch.testing.assert_close(U @ torch.diag(S) @ V.T, best_rank4, atol=1e-4, rtol=1e-4)
    U2, V2 = linalg.top_singular(-w, 4)  # the same subspaces; signs fixed by the same rule
    torch.testing.assert_close(U2, U, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(V2, -V, atol=1e-4, rtol=1e-4)


def test_rebalance_keeps_the_product_and_balances_factors():
    g = torch.Generator().manual_seed(1)
    B, A = torch.randn(10, 3, generator=g) * 5, torch.randn(3, 7, generator=g) * 0.1
    B2, A2 = linalg.rebalance(B, A, r=3)
    torch.testing.assert_close(B2 @ A2, B @ A, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(B2.T @ B2, A2 @ A2.T, atol=1e-4, rtol=1e-4)
    # rank 6 squeezed to 2: the best rank-2 approximation
    B6, A6 = torch.randn(10, 6, generator=g), torch.randn(6, 7, generator=g)
    Bk, Ak = linalg.rebalance(B6, A6, r=2)
    u, s, vh = torch.linalg.svd(B6 @ A6)
    torch.testing.assert_close(Bk @ Ak, u[:, :2] @ torch.diag(s[:2]) @ vh[:2], atol=1e-4, rtol=1e-4)
    assert abs(linalg.factor_norm(B, A) - float(torch.linalg.norm(B @ A))) < 1e-3


def test_project_same_shape_is_the_lora_x_projection():
    g = torch.Generator().manual_seed(2)
    B, A = torch.randn(6, 2, generator=g), torch.randn(2, 5, generator=g)
    U_t, V_t = _orthonormal(6, 3, 3), _orthonormal(5, 3, 4)
    A_t, B_t = project.transfer_unit(A, B, {"U_t": U_t, "V_t": V_t, "target_shape": (6, 5)})
    torch.testing.assert_close(B_t @ A_t, U_t @ U_t.T @ (B @ A) @ V_t @ V_t.T, atol=1e-5, rtol=1e-5)
    # full bases (identity maps): the update is unchanged
    A_i, B_i = project.transfer_unit(A, B, {"U_t": torch.eye(6), "V_t": torch.eye(5), "target_shape": (6, 5)})
    torch.testing.assert_close(B_i @ A_i, B @ A)


def test_project_across_shapes_re_embeds_in_the_target_basis():
    g = torch.Generator().manual_seed(5)
    B, A = torch.randn(6, 2, generator=g), torch.randn(2, 4, generator=g)
    U_s, V_s = _orthonormal(6, 2, 6), _orthonormal(4, 2, 7)
    U_t, V_t = _orthonormal(9, 2, 8), _orthonormal(7, 2, 9)
    bases = {"U_s": U_s, "V_s": V_s, "U_t": U_t, "V_t": V_t, "target_shape": (9, 7)}
    A_t, B_t = project.transfer_unit(A, B, bases)
    core = U_s.T @ (B @ A) @ V_s  # the update in the source basis
    torch.testing.assert_close(B_t @ A_t, U_t @ core @ V_t.T, atol=1e-5, rtol=1e-5)
    # a sign flip of one basis pair on both sides cancels out
    flip = torch.tensor([1.0, -1.0])
    flipped = {"U_s": U_s * flip, "V_s": V_s, "U_t": U_t * flip, "V_t": V_t, "target_shape": (9, 7)}
    A_f, B_f = project.transfer_unit(A, B, flipped)
    torch.testing.assert_close(B_f @ A_f, B_t @ A_t, atol=1e-5, rtol=1e-5)


def test_direct_refuses_other_shapes():
    import pytest

    from paw.transfer.methods import SkipUnit

    with pytest.raises(SkipUnit, match="equal shapes"):
        direct.transfer_unit(torch.zeros(2, 4), torch.zeros(6, 2), {"target_shape": (6, 5)})


def test_linear_cka_invariances_and_monotone_map():
    from paw.transfer.cka import linear_cka, monotone_map

    g = torch.Generator().manual_seed(3)
    X = torch.randn(50, 8, generator=g)
    assert abs(linear_cka(X, X) - 1.0) < 1e-6
    assert abs(linear_cka(X, 3.0 * X @ _orthonormal(8, 8, 11)) - 1.0) < 1e-5  # rotation and scale
    assert linear_cka(X, torch.randn(50, 8, generator=g)) < 0.5
    assert abs(linear_cka(X, torch.cat([X, torch.zeros(50, 4)], dim=1)) - 1.0) < 1e-6  # across widths
    scores = [[0.9, 0.1, 0.1, 0.1], [0.1, 0.2, 0.8, 0.3], [0.1, 0.1, 0.3, 0.9]]
    assert monotone_map(scores) == {0: 0, 1: 2, 2: 3}
    # a better total that is not monotone is not allowed
    assert monotone_map([[0.1, 0.9], [0.9, 0.1]]) in ({0: 1, 1: 1}, {0: 0, 1: 0})
