"""Residual-stream maps between two models, fitted from shared-vocabulary embeddings (LoRASuite, arXiv
2505.13515): tokens that stand for the same bytes in both tokenizers (token_map.py) give paired rows of the input
embeddings E_s (n × d_s) and E_t (n × d_t); least squares gives ``M`` (d_t × d_s) with ``E_t ≈ E_s Mᵀ``
(source → target) and ``N`` (d_s × d_t) with ``E_s ≈ E_t Nᵀ`` (target → source). For an orthogonal change of basis
both are exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paw.errors import PawError
from paw.transfer.token_map import SharedTokens
from paw.transfer.weights import WeightStore

MIN_SHARED = 32


def shared_token_ids(source_dir: Path, target_dir: Path) -> SharedTokens:
    """The tokens both models' vocabularies have, paired by the bytes they stand for (paw/transfer/token_map.py)."""
    from transformers import AutoTokenizer

    from paw.transfer.token_map import shared_tokens

    return shared_tokens(AutoTokenizer.from_pretrained(source_dir), AutoTokenizer.from_pretrained(target_dir))


def _embedding_key(store: WeightStore) -> str:
    for key in store.files:
        if key.endswith("embed_tokens.weight"):
            return key
    raise PawError(f"{store.label} model: no embed_tokens weight to fit a residual map from")


def fit_maps(store_s: WeightStore, store_t: WeightStore, ridge: float = 1e-6) -> tuple[Any, Any, Any]:
    """(M, N, the shared tokens)."""
    import torch

    shared = shared_token_ids(store_s.dir, store_t.dir)
    ids_s, ids_t = shared.source_ids, shared.target_ids
    if len(ids_s) < MIN_SHARED:
        raise PawError(
            f"--method align: the two tokenizers share only {len(ids_s)} tokens (need {MIN_SHARED}) to fit a map"
        )
    E_s = store_s.get(_embedding_key(store_s))[ids_s]
    E_t = store_t.get(_embedding_key(store_t))[ids_t]

    def solve(X, Y):  # argmin_W ‖X Wᵀ − Y‖² + ridge‖W‖², W: (d_Y × d_X)
        gram = X.T @ X + ridge * torch.eye(X.shape[1])
        return torch.linalg.solve(gram, X.T @ Y).T

    return solve(E_s, E_t), solve(E_t, E_s), shared
