"""SFT loss with the vocabulary projection applied only where a label is read.

The causal-LM loss reads log p(x_{t+1} | x_≤t) only at positions whose next token is a completion token; with the
prompt masked that is a small part of a row, yet a plain forward projects every position onto the whole
vocabulary (on Qwen2.5-0.5B's shape, 151,936 × 896 per token: about a third of the forward), and TRL's chunked
log-prob kernel, which avoids materialising the logits, is slower still on CPU (it recomputes them in tiles in
the backward). Here the model's own forward runs with ``logits_to_keep`` = the positions t where any row of the
batch has a label at t+1, so the head (with everything the model applies after it: Gemma-2's final
soft-capping, an adapter on ``lm_head``) projects only those, and the loss is

    L = − Σ_{(b,t): y_{b,t+1} ≠ −100} log softmax(z_{b,t})[y_{b,t+1}] / N,

with N the number of label tokens in the batch (or ``num_items_in_batch`` across gradient accumulation), which is
the loss TRL's SFTTrainer computes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paw.utils.hf_types import Model

IGNORE = -100


@dataclass
class LabelLoss:
    loss: Any
    label_tokens: int
    entropy_sum: float
    correct: int


def label_positions(labels: Any) -> Any:
    """Sequence positions t (shared by the batch) whose next token is a label in some row."""
    return (labels[:, 1:] != IGNORE).any(dim=0).nonzero().squeeze(-1)


def label_positions_loss(model: Model, inputs: dict[str, Any], num_items_in_batch: Any = None) -> LabelLoss:
    """Run ``model`` on ``inputs`` (with ``labels``) projecting only label positions; returns the mean token NLL."""
    import torch

    labels = inputs["labels"]
    keep = label_positions(labels)
    forward = {k: v for k, v in inputs.items() if k != "labels"}
    logits = model(**forward, logits_to_keep=keep, use_cache=False).logits  # (B, K, V)
    targets = labels[:, 1:][:, keep]  # the label each kept position predicts
    mask = targets != IGNORE
    # (N, V) log-probabilities, only at positions whose own row has a label there; one log-softmax serves the
    # loss and the metrics
    log_p = torch.log_softmax(logits[mask].float(), dim=-1)
    picked = targets[mask]
    total = -log_p.gather(1, picked[:, None]).sum()
    count = int(mask.sum())
    denominator = num_items_in_batch if num_items_in_batch is not None else count
    loss = total / torch.as_tensor(denominator, device=total.device).clamp(min=1)
    with torch.no_grad():
        entropy = float(-(log_p.exp() * log_p).sum()) if count else 0.0
        correct = int((log_p.argmax(dim=-1) == picked).sum())
    return LabelLoss(loss=loss, label_tokens=count, entropy_sum=entropy, correct=correct)
