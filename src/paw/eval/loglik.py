"""Log-likelihood of continuations, computed as lm-evaluation-harness computes it, with the shared context encoded
once per document.

Tokenisation follows lm-eval's ``TemplateLM._encode_pair``: trailing whitespace of the context moves to the
continuation; the context is encoded alone, the continuation tokens are the tail of the joint encoding; the
model input is ``context_tokens + continuation_tokens`` (an empty context is replaced by the BOS/EOS token).
The score of a choice is ``Σ_j log p(cont_j | context, cont_<j)``.

Speed: lm-eval's HF backend runs ``context + choice`` once per choice, each a row of its own. paw runs every
distinct token path once: the requests' inputs (lm-eval's ``(context + continuation)[:-1]``), sorted, are
inserted into tries, one trie per row, so a prefix that requests share (a document's context, leading tokens its
choices share, WinoGrande's sentence before the blank, a twin document's identical start, the few-shot examples)
runs once. Each token attends to itself and its ancestors only (a 4D attention mask) and takes its depth as its
position, so it computes exactly what it would in its own row. Rows fill to the longest document's trie (at
least ``ROW_MIN`` tokens), so batches carry little padding; neither the rows nor the results depend on the batch
size. Rows never pass the model's context or sliding window (Gemma-2); a request longer than a row runs alone,
left-truncated as lm-eval truncates it. Prefix- and prompt-tuned models (virtual tokens in the cache or before
the input) take one plain row per request with an ordinary padding mask; prompt tuning's virtual positions are
cut from the logits.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from paw.eval.memory import AUTO_MAX_ROWS, AUTO_SHARE, LOGITS_BUDGET, STATS_CHUNK, MemoryModel, free_bytes

if TYPE_CHECKING:
    from paw.utils.hf_types import Model, Tokenizer

# Rows fill to at least this many tokens: attention under a dense mask costs length² per row, which at 256
# positions is ~3% of a layer's arithmetic at Qwen2.5-0.5B's width, while longer rows share more and pad less.
# Measured there (ARC-Easy + HellaSwag, 100 docs each, CPU): 128 and 512 were both 3-10% slower than 256.
ROW_MIN = 256
LOOKAHEAD = 32  # documents a full row passes over, looking for one that still fits


@dataclass(frozen=True)
class Scored:
    loglik: float
    is_greedy: bool


@dataclass
class _Row:
    """One forward-pass row: a trie of request inputs, flattened (a parent comes before its children)."""

    tokens: list[int]
    positions: list[int]  # depth in the trie
    parents: list[int]  # index of each token's parent in this row, -1 for a root
    # (request index, positions whose logits predict the continuation, continuation token ids)
    reads: list[tuple[int, list[int], list[int]]]


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


def _inputs(pairs: Sequence[tuple[list[int], list[int]]], max_len: int) -> list[list[int]]:
    """lm-eval's model input per request: ``(context + continuation)[-(max_len + 1):][:-1]``."""
    return [(ctx + cont)[-(max_len + 1) :][:-1] for ctx, cont in pairs]


def _lcp(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    for i in range(n):
        if a[i] != b[i]:
            return i
    return n


def build_rows(
    pairs: Sequence[tuple[list[int], list[int]]],
    groups: Sequence[Sequence[int]],
    max_len: int,
    window: int | None = None,
    share: bool = True,
) -> list[_Row]:
    """Rows holding every request's input once per distinct token path (see the module docstring); ``groups``
    (requests of one document) only size the rows. ``share=False``: one plain row per request."""
    inputs = _inputs(pairs, max_len)
    if not share:
        return [
            _Row(
                inp,
                list(range(len(inp))),
                list(range(-1, len(inp) - 1)),
                [(i, _read(inp, pairs[i]), pairs[i][1])],
            )
            for i, inp in enumerate(inputs)
        ]
    limit = min(max_len, window) if window else max_len
    sizes = [_trie_size([inputs[i] for i in g]) for g in groups]
    capacity = min(limit, max([ROW_MIN, *sizes]))
    # a document is placed whole (its requests in sorted order); one too long for a row, request by request
    units = [
        sorted(g, key=lambda i: inputs[i]) for g, size in zip(groups, sizes, strict=True) if size <= capacity
    ]
    units += [[i] for g, size in zip(groups, sizes, strict=True) if size > capacity for i in g]
    waiting = deque(sorted((u for u in units if u), key=lambda u: inputs[u[0]]))
    rows: list[_Row] = []
    while waiting:
        row, path, last, passed = _Row([], [], [], []), [], [], []
        rows.append(row)
        # in sorted order while documents fit; then the next LOOKAHEAD that do not fit wait for the next row
        while waiting and len(passed) <= LOOKAHEAD:
            unit = waiting.popleft()
            cost = _new_tokens([inputs[i] for i in unit], last)
            if row.tokens and len(row.tokens) + cost > capacity:
                passed.append(unit)
                continue
            for i in unit:
                inp = inputs[i]
                shared = _lcp(last, inp)
                del path[shared:]
                for depth in range(shared, len(inp)):
                    row.parents.append(path[-1] if path else -1)
                    path.append(len(row.tokens))
                    row.tokens.append(inp[depth])
                    row.positions.append(depth)
                row.reads.append((i, [path[d] for d in _read(inp, pairs[i])], pairs[i][1]))
                last = inp
        waiting.extendleft(reversed(passed))
    return rows


def _read(inp: list[int], pair: tuple[list[int], list[int]]) -> list[int]:
    """The input positions whose outputs predict the continuation's tokens (its last ``len(cont)``)."""
    return list(range(len(inp) - len(pair[1]), len(inp)))


def _new_tokens(seqs: list[list[int]], after: list[int]) -> int:
    """Tokens that sorted ``seqs`` add to a trie whose last inserted sequence is ``after``."""
    return sum(len(s) - _lcp(prev, s) for prev, s in zip([after, *seqs], seqs, strict=False))


def _trie_size(seqs: list[list[int]]) -> int:
    return _new_tokens(sorted(seqs), [])


def _tree_mask(rows: list[_Row], length: int, dtype: Any, device: Any):
    """Additive 4D mask [B, 1, L, L]: 0 where a query may attend a key (the key is the query or one of its
    ancestors), the dtype's minimum elsewhere; padding attends to itself (no NaN from empty rows)."""
    import numpy as np
    import torch

    allowed = np.zeros((len(rows), length, length), dtype=bool)
    for b, row in enumerate(rows):
        for i, parent in enumerate(row.parents):
            if parent >= 0:
                allowed[b, i] = allowed[b, parent]
            allowed[b, i, i] = True
        for i in range(len(row.parents), length):
            allowed[b, i, i] = True
    mask = torch.zeros(allowed.shape, dtype=dtype)
    mask.masked_fill_(~torch.from_numpy(allowed), torch.finfo(dtype).min)
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
                mask = _tree_mask(batch, length, mask_dtype, device)
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
    virtual = virtual_tokens(model)
    if virtual is not None:  # one plain row per request, after the virtual tokens
        max_len -= virtual
    rows = build_rows(pairs, groups, max_len, _sliding_window(model), share=virtual is None)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else prefix
    scores = score_rows(model, rows, len(requests), batch_size, pad, share)
    return scores, sum(len(r.tokens) for r in rows)
