"""Log-likelihood of continuations, computed as lm-evaluation-harness computes it, with the shared context encoded
once per document.

Tokenisation follows lm-eval's ``TemplateLM._encode_pair``: trailing whitespace of the context moves to the
continuation; the context is encoded alone, the continuation tokens are the tail of the joint encoding; the
model input is ``context_tokens + continuation_tokens`` (an empty context is replaced by the BOS/EOS token).
The score of a choice is ``Σ_j log p(cont_j | context, cont_<j)``.

Speed: lm-eval's HF backend runs ``context + choice`` once per choice. paw packs one document into one row:
the longest common token prefix of its requests (the context, plus any leading tokens the choices share; for
WinoGrande the sentence before the blank) once, then each request's remaining tokens as a branch, with a block
attention mask (a branch sees the prefix and its own earlier tokens, never another branch) and position ids
that continue from the prefix in every branch. Shared tokens run once instead of K times; the arithmetic per
token is the same. Documents then sit side by side (best fit, longest first) in rows as long as the longest
one (up to ``PACK_MAX`` tokens), each with its own positions and seeing only itself, so that batches carry
little padding (15-20% of the positions of length-sorted batches of ARC, HellaSwag and PIQA rows). The packing
does not depend on the batch size, and neither do the results. Models with sliding-window layers (Gemma-2) fall
back to one row per choice when a row would exceed the window. Prefix- and prompt-tuned models (virtual tokens in the cache or before the input) take plain rows
with an ordinary padding mask; prompt tuning's virtual positions are cut from the logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paw.eval.memory import AUTO_MAX_ROWS, AUTO_SHARE, LOGITS_BUDGET, STATS_CHUNK, MemoryModel, free_bytes

if TYPE_CHECKING:
    from paw.utils.hf_types import Model, Tokenizer

MIN_SAVING = 0.85  # pack a group only when it runs at most 85% of the tokens of one row per request
# Documents share a row only up to this length: attention under a dense block mask costs length² per row, and at
# 512 positions it is still a few percent of a layer's arithmetic at the hidden sizes paw runs.
PACK_MAX = 512


@dataclass(frozen=True)
class Scored:
    loglik: float
    is_greedy: bool


@dataclass
class _Row:
    """One forward-pass row: tokens, positions, block ids (-1 = its document's shared context), document ids
    (a token sees only its own document) and what to read from it."""

    tokens: list[int]
    positions: list[int]
    blocks: list[int]
    # (request index, positions whose logits predict the continuation, continuation token ids)
    reads: list[tuple[int, list[int], list[int]]]
    documents: list[int] | None = None  # None: one document


def _side_by_side(rows: Sequence[_Row]) -> _Row:
    """One row holding ``rows``' documents one after another."""
    if len(rows) == 1:
        return rows[0]
    tokens, positions, blocks, documents, reads = [], [], [], [], []
    for document, row in enumerate(rows):
        start = len(tokens)
        tokens += row.tokens
        positions += row.positions
        blocks += row.blocks
        documents += [document] * len(row.tokens)
        reads += [(i, [start + p for p in where], cont) for i, where, cont in row.reads]
    return _Row(tokens, positions, blocks, reads, documents)


def pack_rows(rows: Sequence[_Row], capacity: int) -> list[_Row]:
    """Best-fit decreasing: each row (a document) goes to the fullest packed row it still fits in, a new one when
    none; rows longer than ``capacity`` stay alone."""
    import bisect

    bins: list[list[_Row]] = []
    room: list[tuple[int, int]] = []  # (free tokens, bin), ascending
    for row in sorted(rows, key=lambda r: -len(r.tokens)):
        n = len(row.tokens)
        at = bisect.bisect_left(room, (n, -1))
        if at < len(room):
            free, b = room.pop(at)
            bins[b].append(row)
            bisect.insort(room, (free - n, b))
        else:
            bins.append([row])
            if capacity > n:
                bisect.insort(room, (capacity - n, len(bins) - 1))
    return [_side_by_side(b) for b in bins]


def encode_pair(
    tokenizer: Tokenizer, context: str, continuation: str, prefix_id: int
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


def _encode(tokenizer: Tokenizer, text: str, prefix_id: int) -> list[int]:
    # Like lm-eval's HFLM.tok_encode: the tokenizer's own special tokens, unless the text already starts with BOS.
    bos = tokenizer.bos_token
    add_special = not (bos and text.startswith(bos))
    return tokenizer.encode(text, add_special_tokens=add_special)


def prefix_token_id(tokenizer: Tokenizer) -> int:
    return tokenizer.bos_token_id if tokenizer.bos_token_id is not None else tokenizer.eos_token_id


_UNSET_MAX_LENGTH = int(1e30)  # transformers' tokenizer.model_max_length when nothing set it


def context_length(model: Model, tokenizer: Tokenizer, default: int = 2048) -> int:
    """The longest sequence lm-eval gives this model: the (text) config's ``n_positions``,
    ``max_position_embeddings`` or ``n_ctx``, else the tokenizer's ``model_max_length``, else ``default``."""
    config = getattr(model.config, "text_config", None) or model.config
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        if getattr(config, name, None) is not None:
            return int(getattr(config, name))
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit is not None and limit != _UNSET_MAX_LENGTH else default


def _sliding_window(model: Model) -> int | None:
    config = model.config
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or []
    uses = "sliding_attention" in layer_types or getattr(config, "use_sliding_window", False)
    return window if (window and uses) else None


def virtual_tokens(model: Model) -> int | None:
    """None for ordinary models; for a prefix/prompt-tuned PeftModel, how many logits its virtual tokens add in
    front (prompt tuning: ``num_virtual_tokens``; prefix tuning: 0, the prefix lives in the attention cache)."""
    config = getattr(model, "active_peft_config", None)
    if config is None or not getattr(config, "is_prompt_learning", False):
        return None
    return config.num_virtual_tokens if str(config.peft_type).endswith("PROMPT_TUNING") else 0


def _common_prefix(seqs: Sequence[list[int]]) -> int:
    n = min(len(s) for s in seqs)
    first = seqs[0]
    for i in range(n):
        if any(s[i] != first[i] for s in seqs[1:]):
            return i
    return n


def build_rows(
    pairs: Sequence[tuple[list[int], list[int]]],
    groups: Sequence[Sequence[int]],
    max_len: int,
    window: int | None,
) -> list[_Row]:
    """One row per group: the longest common token prefix of the group's inputs once, then each request's own
    tail as a branch. A request's input is lm-eval's ``(context + continuation)[:-1]``; the prefix is capped so
    every continuation token is predicted from the request's own tokens. Groups that are too long (or cross a
    sliding window) fall back to one plain, left-truncated row per request, as lm-eval does."""
    rows: list[_Row] = []
    limit = min(max_len, window) if window else max_len
    for group in groups:
        seqs = [pairs[i][0] + pairs[i][1] for i in group]
        prefix = min(_common_prefix(seqs), min(len(s) for s in seqs) - 1)
        packed_len = prefix + sum(len(s) - 1 - prefix for s in seqs)
        plain_len = sum(len(s) - 1 for s in seqs)
        # Packing pays when the shared prefix is a real part of the work; a long packed row with little sharing
        # costs more attention (quadratic in row length) than it saves.
        worth_it = packed_len <= MIN_SAVING * plain_len
        if len(group) > 1 and worth_it and packed_len <= limit and all(pairs[i][1] for i in group):
            first = seqs[0]
            tokens, positions, blocks = first[:prefix], list(range(prefix)), [-1] * prefix
            reads = []
            for block, (i, seq) in enumerate(zip(group, seqs, strict=True)):
                start = len(tokens)
                tail = seq[prefix:-1]
                tokens += tail
                positions += list(range(prefix, prefix + len(tail)))
                blocks += [block] * len(tail)
                ctx_len, cont = len(pairs[i][0]), pairs[i][1]
                # token k of seq is predicted by the output at seq index k-1, which sits in the prefix or the branch
                where = [
                    k - 1 if k - 1 < prefix else start + (k - 1 - prefix) for k in range(ctx_len, len(seq))
                ]
                reads.append((i, where, cont))
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
    documents = torch.full((len(rows), length), -1, dtype=torch.long)
    for b, row in enumerate(rows):
        blocks[b, : len(row.blocks)] = torch.tensor(row.blocks)
        documents[b, : len(row.blocks)] = torch.tensor(row.documents) if row.documents else 0
    q, k = blocks[:, :, None], blocks[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    allowed = causal & (k != -2) & ((k == -1) | (k == q)) & (documents[:, :, None] == documents[:, None, :])
    allowed |= torch.eye(
        length, dtype=torch.bool
    )  # padding rows attend to themselves: no NaN from empty rows
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~allowed, torch.finfo(dtype).min)
    return mask[:, None].to(device)


def keeps_logits(model: Model) -> str | None:
    """How the model's forward can limit its head to some positions: ``"rows"`` when ``logits_to_keep`` takes a
    boolean (batch x length) mask (transformers' ``slice_logits_to_keep``: the head runs on exactly the positions
    each row reads), ``"columns"`` when it takes only positions shared by every row, None when it takes neither.
    peft passes it through to the base model."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if "logits_to_keep" not in inspect.signature(base.forward).parameters:
        return None
    return "rows" if hasattr(inspect.getmodule(type(base)), "slice_logits_to_keep") else "columns"


def _reads_of(row: _Row) -> int:
    return len({p for _, positions, _ in row.reads for p in positions})


def plan_batches(
    rows: list[_Row], batch_size: int | None, memory: MemoryModel, free: int
) -> list[list[_Row]]:
    """Cut rows (longest first) into batches: at most ``batch_size`` rows whose read positions' logits fit
    ``LOGITS_BUDGET``; with ``batch_size`` None (auto), as many rows as the memory model fits in ``free`` bytes."""
    batches: list[list[_Row]] = []
    current: list[_Row] = []
    reads = 0
    for row in rows:
        more = _reads_of(row)
        if current:
            n, length = len(current) + 1, len(current[0].tokens)
            if batch_size is not None:
                full = n > batch_size or memory.logits(reads + more) > LOGITS_BUDGET
            else:
                full = n > AUTO_MAX_ROWS or memory.batch(n, length, reads + more) > free
            if full:
                batches.append(current)
                current, reads = [], 0
        current.append(row)
        reads += more
    return batches + ([current] if current else [])


def score_rows(
    model: Model,
    rows: list[_Row],
    n_requests: int,
    batch_size: int | None,
    pad_id: int,
    share: float = AUTO_SHARE,
) -> list[Scored]:
    """Run the rows (longest first, so an OOM shows up at once) and collect each request's score; ``batch_size``
    None sizes each batch to ``share`` of the free memory."""
    import torch

    virtual = virtual_tokens(model)
    keep = keeps_logits(model)
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype
    mask_dtype = dtype if dtype.is_floating_point else torch.float32
    if virtual is None and keep != "columns" and rows:  # (shared columns would grow with every document)
        rows = pack_rows(rows, min(PACK_MAX, max(len(row.tokens) for row in rows)))
    rows = sorted(rows, key=lambda row: -len(row.tokens))
    free = int(free_bytes(device) * share) if batch_size is None else 0
    results: list[Scored | None] = [None] * n_requests
    model.eval()
    for batch in plan_batches(rows, batch_size, MemoryModel.of(model), free):
        length = max(len(r.tokens) for r in batch)
        ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
        pos = torch.zeros((len(batch), length), dtype=torch.long)
        for b, row in enumerate(batch):
            ids[b, : len(row.tokens)] = torch.tensor(row.tokens)
            pos[b, : len(row.positions)] = torch.tensor(row.positions)
        # The vocabulary projection runs only where a log-probability is read: the model's own head, soft-capping
        # and adapters apply, on (read positions x vocabulary) instead of (batch x length x vocabulary).
        select, where = _reads(batch, length, virtual or 0, keep)
        with torch.no_grad():
            if virtual is None:
                mask = _block_mask(batch, length, mask_dtype, device)
                inputs = {"position_ids": pos.to(device), "attention_mask": mask}
            else:  # plain right-padded rows: peft prepends the virtual tokens itself
                mask = torch.arange(length)[None] < torch.tensor([len(r.tokens) for r in batch])[:, None]
                inputs = {"attention_mask": mask.long().to(device)}
            extra = {"logits_to_keep": select.to(device)} if select is not None else {}
            logits = model(input_ids=ids.to(device), **inputs, **extra).logits
        if select is None:
            logits = logits[:, virtual or 0 :]
        _collect(logits.reshape(-1, logits.shape[-1]), batch, where, results)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _reads(batch: list[_Row], length: int, virtual: int, keep: str | None):
    """What to pass as ``logits_to_keep`` and where each (row, position) lands in the flattened logits."""
    import torch

    wanted = [sorted({p for _, positions, _ in row.reads for p in positions}) for row in batch]
    if keep == "rows":  # a boolean mask: the logits come out flat, row by row, positions in order
        select = torch.zeros((len(batch), virtual + length), dtype=torch.bool)
        where, n = {}, 0
        for b, positions in enumerate(wanted):
            select[b, [virtual + p for p in positions]] = True
            for p in positions:
                where[(b, p)], n = n, n + 1
        return select, where
    if keep == "columns":  # the union of every row's positions, for each row
        union = sorted({p for positions in wanted for p in positions})
        column = {p: c for c, p in enumerate(union)}
        where = {(b, p): b * len(union) + column[p] for b, positions in enumerate(wanted) for p in positions}
        return torch.tensor([virtual + p for p in union]), where
    where = {(b, p): b * length + p for b, positions in enumerate(wanted) for p in positions}
    return None, where


def _collect(logits: Any, batch: list[_Row], where: dict[tuple[int, int], int], results: list) -> None:
    """Each request's Σ log p(token) = Σ (logit − logsumexp(logits)) and whether every token was the argmax:
    one logsumexp and one argmax per read position, in fp32, ``STATS_CHUNK`` positions at a time (no log-softmax
    tensor, no second copy of the logits)."""
    import torch

    index = sorted(set(where.values()))
    at = {flat: i for i, flat in enumerate(index)}
    lse, top = torch.empty(len(index)), torch.empty(len(index), dtype=torch.long)
    for start in range(0, len(index), STATS_CHUNK):
        chunk = logits[torch.tensor(index[start : start + STATS_CHUNK])].float()
        lse[start : start + len(chunk)] = torch.logsumexp(chunk, dim=-1).cpu()
        top[start : start + len(chunk)] = chunk.argmax(dim=-1).cpu()
    requests, flat, tokens = [], [], []
    for b, row in enumerate(batch):
        for request, positions, cont in row.reads:
            requests.append((request, len(flat), len(cont)))
            flat += [where[(b, p)] for p in positions]
            tokens += cont
    picked = logits[torch.tensor(flat, device=logits.device), torch.tensor(tokens, device=logits.device)]
    rows = torch.tensor([at[f] for f in flat])
    logprobs, greedy = picked.float().cpu() - lse[rows], top[rows] == torch.tensor(tokens)
    for request, start, n in requests:
        results[request] = Scored(
            logprobs[start : start + n].sum().item(), bool(greedy[start : start + n].all())
        )


def loglikelihoods(
    model: Model,
    tokenizer: Tokenizer,
    requests: Sequence[tuple[str, str]],
    groups: Sequence[Sequence[int]],
    batch_size: int | None = 16,
    max_length: int | None = None,
    share: float = AUTO_SHARE,
) -> tuple[list[Scored], int]:
    """Score ``requests`` (context, continuation); ``groups`` lists request indices that share a context.

    Returns the scores and the number of tokens run through the model."""
    prefix = prefix_token_id(tokenizer)
    pairs = [encode_pair(tokenizer, ctx, cont, prefix) for ctx, cont in requests]
    max_len = max_length or context_length(model, tokenizer)
    if virtual_tokens(model) is not None:
        groups = [[i] for group in groups for i in group]  # one plain row per request
        max_len -= virtual_tokens(model) or 0
    rows = build_rows(pairs, groups, max_len, _sliding_window(model))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix
    scores = score_rows(model, rows, len(requests), batch_size, pad, share)
    return scores, sum(len(r.tokens) for r in rows)
