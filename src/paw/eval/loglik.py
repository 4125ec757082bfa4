"""Log-likelihood of continuations, computed as lm-evaluation-harness computes it, with the shared context encoded
once per document.

Tokenisation follows lm-eval's ``TemplateLM._encode_pair``: trailing whitespace of the context moves to the
continuation; the context is encoded alone, the continuation tokens are the tail of the joint encoding; the
model input is ``context_tokens + continuation_tokens`` (an empty context is replaced by the BOS/EOS token).
The score of a choice is ``Σ_j log p(cont_j | context, cont_<j)``.

Speed: lm-eval's HF backend runs ``context + choice`` once per choice. paw packs one document into one row:
``context, cont_1, ..., cont_K`` with a block attention mask (each continuation sees the context and its own
earlier tokens, never another continuation) and position ids that restart after the context for every
continuation. The context is run once instead of K times; the arithmetic per token is the same. Rows are sorted
by length and batched with right padding, so results do not depend on the batch size. Models with sliding-window
layers (Gemma-2) fall back to one row per choice when a row would exceed the window.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scored:
    loglik: float
    is_greedy: bool


@dataclass
class _Row:
    """One forward-pass row: tokens, positions, block ids (-1 = shared context) and what to read from it."""

    tokens: list[int]
    positions: list[int]
    blocks: list[int]
    # (request index, positions whose logits predict the continuation, continuation token ids)
    reads: list[tuple[int, list[int], list[int]]]


def encode_pair(
    tokenizer: Any, context: str, continuation: str, prefix_id: int
) -> tuple[list[int], list[int]]:
    """lm-eval's ``_encode_pair`` (causal) plus its empty-context rule."""
    if not context:
        return [prefix_id], _encode(tokenizer, continuation, prefix_id)
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = _encode(tokenizer, context + continuation, prefix_id)
    ctx = _encode(tokenizer, context, prefix_id)
    return ctx, whole[len(ctx) :]


def _encode(tokenizer: Any, text: str, prefix_id: int) -> list[int]:
    # Like lm-eval's HFLM.tok_encode: the tokenizer's own special tokens, unless the text already starts with BOS.
    bos = tokenizer.bos_token
    add_special = not (bos and text.startswith(bos))
    return tokenizer.encode(text, add_special_tokens=add_special)


def prefix_token_id(tokenizer: Any) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


def _sliding_window(model: Any) -> int | None:
    config = model.config
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or []
    uses = "sliding_attention" in layer_types or getattr(config, "use_sliding_window", False)
    return window if (window and uses) else None


def build_rows(
    pairs: Sequence[tuple[list[int], list[int]]],
    groups: Sequence[Sequence[int]],
    max_len: int,
    window: int | None,
) -> list[_Row]:
    """Pack each group of requests sharing one context into a row; fall back to one row per request when the
    contexts differ, the row is too long, or it would cross a sliding-attention window."""
    rows: list[_Row] = []
    for group in groups:
        ctx = pairs[group[0]][0]
        shared = all(pairs[i][0] == ctx for i in group)
        packed_len = len(ctx) + sum(len(pairs[i][1]) for i in group)
        limit = min(max_len, window) if window else max_len
        if shared and len(group) > 1 and packed_len <= limit and all(pairs[i][1] for i in group):
            tokens, positions, blocks = list(ctx), list(range(len(ctx))), [-1] * len(ctx)
            reads = []
            for block, i in enumerate(group):
                cont = pairs[i][1]
                start = len(tokens)
                tokens += cont
                positions += list(range(len(ctx), len(ctx) + len(cont)))
                blocks += [block] * len(cont)
                # cont[0] is predicted by the last context token, cont[j] by cont[j-1]'s position.
                reads.append((i, [len(ctx) - 1] + list(range(start, start + len(cont) - 1)), cont))
            rows.append(_Row(tokens, positions, blocks, reads))
            continue
        for i in group:
            ctx_i, cont = pairs[i]
            inp = (ctx_i + cont)[-(max_len + 1) :][:-1]
            n = len(inp)
            rows.append(_Row(inp, list(range(n)), [-1] * n, [(i, list(range(n - len(cont), n)), cont)]))
    return rows


def _block_mask(rows: list[_Row], length: int, dtype: Any, device: Any):
    """Additive 4D mask [B, 1, L, L]: 0 where a query may attend a key, the dtype's minimum elsewhere."""
    import torch

    blocks = torch.full((len(rows), length), -2, dtype=torch.long)
    for b, row in enumerate(rows):
        blocks[b, : len(row.blocks)] = torch.tensor(row.blocks)
    q, k = blocks[:, :, None], blocks[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = causal & (k != -2) & ((k == -1) | (k == q))
    allowed |= torch.eye(
        length, dtype=torch.bool
    )  # padding rows attend to themselves: no NaN from empty rows
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None].to(device)


def _batches(rows: list[_Row], batch_size: int) -> Iterator[list[_Row]]:
    for start in range(0, len(rows), batch_size):
        yield rows[start : start + batch_size]


def score_rows(model: Any, rows: list[_Row], n_requests: int, batch_size: int, pad_id: int) -> list[Scored]:
    """Run the rows (longest first, so an OOM shows up at once) and collect each request's score."""
    import torch

    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    mask_dtype = dtype if dtype.is_floating_point else torch.float32
    order = sorted(range(len(rows)), key=lambda r: -len(rows[r].tokens))
    rows = [rows[r] for r in order]
    results: list[Scored | None] = [None] * n_requests
    model.eval()
    for batch in _batches(rows, batch_size):
        length = max(len(r.tokens) for r in batch)
        ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
        pos = torch.zeros((len(batch), length), dtype=torch.long)
        for b, row in enumerate(batch):
            ids[b, : len(row.tokens)] = torch.tensor(row.tokens)
            pos[b, : len(row.positions)] = torch.tensor(row.positions)
        mask = _block_mask(batch, length, mask_dtype, device)
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), position_ids=pos.to(device), attention_mask=mask).logits
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        for b, row in enumerate(batch):
            for request, positions, cont in row.reads:
                lp = logprobs[b, positions]
                target = torch.tensor(cont)
                loglik = lp.gather(1, target[:, None]).sum().item()
                greedy = bool((lp.argmax(dim=-1) == target).all())
                results[request] = Scored(loglik, greedy)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def loglikelihoods(
    model: Any,
    tokenizer: Any,
    requests: Sequence[tuple[str, str]],
    groups: Sequence[Sequence[int]],
    batch_size: int = 16,
    max_length: int | None = None,
) -> tuple[list[Scored], int]:
    """Score ``requests`` (context, continuation); ``groups`` lists request indices that share a context.

    Returns the scores and the number of tokens run through the model."""
    prefix = prefix_token_id(tokenizer)
    pairs = [encode_pair(tokenizer, ctx, cont, prefix) for ctx, cont in requests]
    max_len = max_length or getattr(model.config, "max_position_embeddings", 2048)
    rows = build_rows(pairs, groups, max_len, _sliding_window(model))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix
    return score_rows(model, rows, len(requests), batch_size, pad), sum(len(r.tokens) for r in rows)
