"""Depth mapping by linear CKA (LoRASuite, arXiv 2505.13515): compare every source layer's hidden states with
every target layer's on the same calibration sentences, then pick the best monotone map.

Linear CKA (Kornblith et al., 2019) of centred representations X (n×d_s), Y (n×d_t):
``CKA = ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F · ‖Yᵀ Y‖_F)`` — invariant to rotations and isotropic scaling, defined across widths.
Sentences are mean-pooled per layer, so the two models may use different tokenizers. The map maximises
``Σ_l CKA(l, m(l))`` over non-decreasing ``m`` by dynamic programming. Models are loaded one after the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def linear_cka(X: Any, Y: Any) -> float:
    X = X - X.mean(dim=0, keepdim=True)
    Y = Y - Y.mean(dim=0, keepdim=True)
    cross = (Y.T @ X).pow(2).sum()
    norm = (X.T @ X).pow(2).sum().sqrt() * (Y.T @ Y).pow(2).sum().sqrt()
    return float(cross / norm) if norm > 0 else 0.0


def calibration_texts(n: int = 64) -> list[str]:
    from paw.data.synthetic import corpus_lines

    return list(corpus_lines())[:n]


def layer_states(model_dir: str | Path, texts: list[str]) -> list[Any]:
    """Per decoder layer, the mean-pooled output hidden state of each sentence: a list of (n × d) tensors."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    pooled: list[list[Any]] = []
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=256)
            if ids["input_ids"].shape[1] == 0:
                raise ValueError(f"calibration text {text[:40]!r} has no tokens")
            hidden = model(**ids, output_hidden_states=True).hidden_states[1:]  # skip the embeddings
            for layer, state in enumerate(hidden):
                if len(pooled) <= layer:
                    pooled.append([])
                pooled[layer].append(state[0].mean(dim=0))
    del model
    return [torch.stack(states) for states in pooled]


def cka_matrix(source_states: list[Any], target_states: list[Any]) -> list[list[float]]:
    return [[linear_cka(s, t) for t in target_states] for s in source_states]


def monotone_map(scores: list[list[float]]) -> dict[int, int]:
    """Source layer -> target layer, non-decreasing, maximising the summed scores."""
    n_s, n_t = len(scores), len(scores[0])
    best = [[0.0] * n_t for _ in range(n_s)]
    choice = [[0] * n_t for _ in range(n_s)]
    for j in range(n_t):
        best[0][j] = scores[0][j]
    for i in range(1, n_s):
        running, arg = float("-inf"), 0
        for j in range(n_t):
            if best[i - 1][j] > running:
                running, arg = best[i - 1][j], j
            best[i][j] = scores[i][j] + running
            choice[i][j] = arg
    j = max(range(n_t), key=lambda col: best[n_s - 1][col])
    mapping = {n_s - 1: j}
    for i in range(n_s - 1, 0, -1):
        j = choice[i][j]
        mapping[i - 1] = j
    return dict(sorted(mapping.items()))


def cka_layer_map(source_dir: str | Path, target_dir: str | Path, texts: list[str] | None = None):
    """(map, CKA matrix) between two local model dirs."""
    texts = texts or calibration_texts()
    source_states = layer_states(source_dir, texts)
    target_states = layer_states(target_dir, texts)
    scores = cka_matrix(source_states, target_states)
    return monotone_map(scores), scores
