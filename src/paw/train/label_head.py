"""TRL's fused LM head for preference trainers, done the way ``paw.train.label_loss`` does SFT's loss.

TRL's DPO, KTO and GRPO trainers call ``model(..., labels=labels, fused_lm_head=True)`` and read per-token
log-probabilities (and entropy, mean logit, top-1 hits) of the completion tokens from a forward TRL patched in
(``trl.trainer.utils.add_fused_lm_head``): it projects the hidden states onto the vocabulary in tiles and
recomputes them in the backward, which never holds the logits but, off Triton (on a CPU), costs more than the
backbone (see benchmarks/RESULTS.md, training throughput). ``add_label_head`` replaces that patch: the model's
own forward runs with ``logits_to_keep`` = the positions whose next token is a label in some row, so the head —
with everything the model applies after it (Gemma-2's soft-capping, an adapter on ``lm_head``) — projects only
there, once, and the same per-token fields are returned in the same shapes. Prompt-learning adapters (virtual
tokens shift the positions), pre-shifted labels and router losses keep TRL's path.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

from paw.train.label_loss import IGNORE, label_positions

if TYPE_CHECKING:
    from paw.utils.hf_types import Model


STATS_ROWS = 256  # rows of the (N, V) log-probabilities turned into statistics at a time


def per_token_fields(logits: Any, targets: Any) -> dict[str, Any]:
    """log p(target), entropy, log Σp², mean logit and whether the target is the top token, per row of
    ``logits`` (N, V); only ``log_probs`` carries a gradient. The statistics are taken a few rows at a time, so
    no second (N, V) tensor is held beside the log-probabilities."""
    import torch

    with torch.no_grad():
        mean_logits = logits.float().mean(-1)
        is_top1 = logits.argmax(-1) == targets
    log_p = torch.log_softmax(logits.float(), dim=-1)
    fields = {"log_probs": log_p.gather(1, targets[:, None]).squeeze(1)}
    entropy, sum_sq = [], []
    with torch.no_grad():
        for rows in log_p.detach().split(STATS_ROWS):
            probs = rows.exp()
            entropy.append(-(probs * rows).sum(-1))
            sum_sq.append(torch.logsumexp(2 * rows, dim=-1))
    empty = log_p.new_zeros(0)
    fields["entropy"] = torch.cat(entropy) if entropy else empty
    fields["log_sum_sq_probs"] = torch.cat(sum_sq) if sum_sq else empty
    fields |= {"mean_logits": mean_logits, "is_top1": is_top1}
    return fields


def _scatter(values: Any, mask: Any, keep: Any, length: int) -> Any:
    """(N,) values at ``mask``'s true places of the kept positions → (B, length), zero elsewhere (differentiable)."""
    kept = values.new_zeros(mask.shape).masked_scatter(mask, values)
    return values.new_zeros((mask.shape[0], length)).index_copy(1, keep, kept)


def add_label_head(model: Model, temperature: float = 1.0) -> None:
    """Replace TRL's fused head on ``model`` (the base model under the adapter) with one that projects only the
    label positions, the logits divided by ``temperature`` last (after scaling and soft-capping, as TRL's kernel
    does; GRPO scores at its sampling temperature); keeps TRL's where positions or extra outputs differ (see the
    module docstring)."""
    from trl.trainer.utils import FusedCausalLMOutput

    trl_forward = model.forward
    own_forward = type(model).forward

    def forward(
        self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs
    ):
        router = getattr(self.config.get_text_config(), "output_router_logits", False) or kwargs.get(
            "output_router_logits"
        )
        if not fused_lm_head or shift_labels is not None or router or kwargs.get("inputs_embeds") is not None:
            return trl_forward(
                *args,
                fused_lm_head=fused_lm_head,
                labels=labels,
                shift_labels=shift_labels,
                num_items_in_batch=num_items_in_batch,
                **kwargs,
            )
        keep = label_positions(labels)
        kwargs["use_cache"] = False
        logits = own_forward(self, *args, logits_to_keep=keep, **kwargs).logits  # (B, K, V)
        targets = labels[:, 1:][:, keep].to(logits.device)
        mask = targets != IGNORE
        picked = logits[mask] if temperature == 1.0 else logits[mask] / temperature
        del logits  # only the label rows are kept
        fields = per_token_fields(picked, targets[mask])
        length = labels.shape[1] - 1
        out = {
            name: _scatter(v if v.is_floating_point() else v.float(), mask, keep.to(v.device), length)
            for name, v in fields.items()
        }
        out["is_top1"] = out["is_top1"].bool()
        full_mask = labels[:, 1:] != IGNORE
        count = num_items_in_batch if num_items_in_batch is not None else full_mask.sum().clamp(min=1)
        return FusedCausalLMOutput(loss=-out["log_probs"].sum() / count, label_mask=full_mask, **out)

    model.forward = types.MethodType(forward, model)
