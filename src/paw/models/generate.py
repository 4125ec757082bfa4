"""Batched generation: left padding, stop on the tokenizer's EOS and the chat template's end-of-turn token (and
optional stop strings), greedy or sampled, optionally streamed to the terminal.

Greedy decoding (evaluation, ``paw infer`` without sampling) runs paw's own loop over the model's KV cache: prompts
sorted by length (longest first, as lm-eval does, so a batch pads little and an OOM shows at once); a row leaves
the batch — its cache rows dropped — as soon as it stops, and the next prompt joins the running batch in its place,
so each step runs a full batch. The arithmetic per row is transformers' ``generate``'s: a left-padded prefill,
position ids counted from the attention mask, one token per step."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paw.utils.hf_types import Model, Tokenizer


@dataclass(frozen=True)
class Sampling:
    max_new_tokens: int = 16
    temperature: float = 0.0  # 0: greedy
    top_p: float = 1.0
    seed: int = 0

    def kwargs(self) -> dict[str, Any]:
        if self.temperature <= 0:
            return {"do_sample": False}
        return {"do_sample": True, "temperature": self.temperature, "top_p": self.top_p}


def generate(
    model: Model,
    tokenizer: Tokenizer,
    prompts: list[str],
    max_new_tokens: int = 16,
    batch_size: int = 16,
    stop_tokens: list[str] | None = None,
    stop_strings: list[str] | None = None,
    sampling: Sampling | None = None,
    streamer: Any = None,
    max_prompt_tokens: int | None = None,
) -> list[str]:
    """Continuations of ``prompts`` (batched, left-padded; greedy unless ``sampling`` says otherwise), each cut at
    the first of ``stop_strings``; a prompt longer than ``max_prompt_tokens`` keeps its last ones."""
    import torch

    sampling = sampling or Sampling(max_new_tokens=max_new_tokens)
    if sampling.temperature > 0:
        torch.manual_seed(sampling.seed)
    stops = [tokenizer.convert_tokens_to_ids(t) for t in (stop_tokens or [tokenizer.eos_token])]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    if max_prompt_tokens is not None:
        encoded = [ids[-max_prompt_tokens:] for ids in encoded]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    model.eval()
    if sampling.temperature <= 0 and streamer is None and not _virtual_tokens(model):
        with torch.no_grad():
            new = greedy(
                model, tokenizer, encoded, batch_size, sampling.max_new_tokens, stops, stop_strings or [], pad
            )
    else:
        new = []
        for start in range(0, len(prompts), batch_size):
            ids, mask = _left_padded(encoded[start : start + batch_size], pad, model.device)
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids,
                    attention_mask=mask,
                    max_new_tokens=sampling.max_new_tokens,
                    eos_token_id=stops,
                    pad_token_id=pad,
                    streamer=streamer,
                    **sampling.kwargs(),
                    **({"stop_strings": stop_strings, "tokenizer": tokenizer} if stop_strings else {}),
                )
            new += out[:, ids.shape[1] :].tolist()
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    return [cut_at_stops(text, stop_strings or []) for text in texts]


def _left_padded(rows: list[list[int]], pad: int, device: Any):
    import torch

    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for b, row in enumerate(rows):
        if row:
            ids[b, -len(row) :] = torch.tensor(row)
            mask[b, -len(row) :] = 1
    return ids.to(device), mask.to(device)


def _virtual_tokens(model: Model) -> bool:
    """Prefix/prompt tuning put virtual tokens in the cache or before the input: transformers' generate handles them."""
    config = getattr(model, "active_peft_config", None)
    return bool(getattr(config, "is_prompt_learning", False))


class _Batch:
    """Rows generating together: their KV cache, attention mask (left padding is 0), last positions and the logits
    of their next token; ``rows`` are the prompts' indices, in cache order."""

    def __init__(
        self, model: Model, prompts: list[list[int]], rows: list[int], pad: int, last_only: dict[str, int]
    ) -> None:
        """Prefill ``prompts`` (``last_only``: the keyword that keeps only the last position's logits, if any)."""
        from transformers import DynamicCache

        ids, mask = _left_padded(prompts, pad, model.device)
        self.cache = DynamicCache(config=model.config)
        position = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        out = model(
            input_ids=ids, attention_mask=mask, position_ids=position, past_key_values=self.cache, **last_only
        )
        self.mask, self.last, self.logits, self.rows = mask, position[:, -1], out.logits[:, -1], rows

    def joinable(self) -> bool:
        """Rows can join a running batch only where every cache layer is a plain one (no sliding window)."""
        from transformers.cache_utils import DynamicLayer

        return all(type(layer) is DynamicLayer for layer in self.cache.layers)

    def join(self, other: _Batch) -> None:
        """Append ``other``'s rows, each batch's cache left-padded to the longer one's length."""
        import torch
        import torch.nn.functional as F

        length = max(self.mask.shape[1], other.mask.shape[1])

        def padded(x, dim_from_end):
            extra = length - x.shape[-dim_from_end]
            return F.pad(x, (0, 0) * (dim_from_end - 1) + (extra, 0)) if extra else x

        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([padded(mine.keys, 2), padded(theirs.keys, 2)])
            mine.values = torch.cat([padded(mine.values, 2), padded(theirs.values, 2)])
        self.mask = torch.cat([padded(self.mask, 1), padded(other.mask, 1)])
        self.last = torch.cat([self.last, other.last])
        self.logits = torch.cat([self.logits, other.logits])
        self.rows = self.rows + other.rows

    def keep(self, index: list[int]) -> None:
        """Only these rows go on: the others leave the cache, and so do columns that are padding in every row."""
        import torch

        selected = torch.tensor(index, device=self.mask.device)
        self.cache.batch_select_indices(selected)
        self.mask, self.last = self.mask[selected], self.last[selected]
        self.rows = [self.rows[j] for j in index]
        unused = int(self.mask.any(0).long().argmax())  # leading columns no row attends to
        if unused and self.joinable():
            self.mask = self.mask[:, unused:]
            for layer in self.cache.layers:
                layer.keys, layer.values = layer.keys[:, :, unused:], layer.values[:, :, unused:]

    def step(self, model: Model, tokens: Any) -> None:
        """Feed each row its chosen token; ``logits`` become the next ones."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=-1)
        self.last = self.last + 1
        out = model(
            input_ids=tokens[:, None], attention_mask=self.mask, position_ids=self.last[:, None],
            past_key_values=self.cache,
        )  # fmt: skip
        self.logits = out.logits[:, -1]


def greedy(
    model: Model,
    tokenizer: Tokenizer,
    prompts: list[list[int]],
    batch_size: int,
    max_new_tokens: int,
    stop_ids: list[int],
    stop_strings: list[str],
    pad: int,
) -> list[list[int]]:
    """Greedy continuations of tokenized prompts, each ending before its stop token or after the token that
    completes a stop string (the caller cuts the text there).

    At most ``batch_size`` rows run at once, longest prompts first. A row leaves the batch (and its cache) as soon
    as it stops, and the next waiting prompts join the running batch in its place (their prefill's cache
    left-padded to the batch's), so every step runs a full batch until the prompts run out; a model whose cache
    cannot be joined (sliding-window layers) runs the prompts in fixed batches instead. Each row's arithmetic is
    that of transformers' ``generate`` on a left-padded batch."""
    import inspect

    pending = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    tokens: list[list[int]] = [[] for _ in prompts]
    if max_new_tokens <= 0:
        return tokens
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    last_only = (
        {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(base.forward).parameters else {}
    )
    batch: _Batch | None = None
    while pending or batch is not None:
        free = batch_size - (len(batch.rows) if batch is not None else 0)
        if pending and free > 0 and (batch is None or batch.joinable()):
            rows, pending = pending[:free], pending[free:]
            joining = _Batch(model, [prompts[i] for i in rows], rows, pad, last_only)
            if batch is None:
                batch = joining
            else:
                batch.join(joining)
        chosen = batch.logits.argmax(-1)
        going = []
        for j, (row, token) in enumerate(zip(batch.rows, chosen.tolist(), strict=True)):
            if token in stop_ids:
                continue
            tokens[row].append(token)
            if len(tokens[row]) >= max_new_tokens:
                continue
            if stop_strings and any(s in tokenizer.decode(tokens[row][-_TAIL:]) for s in stop_strings):
                continue
            going.append(j)
        if not going:
            batch = None
            continue
        if len(going) < len(batch.rows):
            batch.keep(going)
            chosen = chosen[going]
        batch.step(model, chosen)
    return tokens


_TAIL = 16  # tokens decoded to look for a stop string that the newest token completes


def cut_at_stops(text: str, stops: list[str]) -> str:
    """Text up to the first stop string, as lm-eval's generate_until returns it."""
    for stop in stops:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text
