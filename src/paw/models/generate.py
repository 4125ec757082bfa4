"""Batched generation: left padding, stop on the tokenizer's EOS and the chat template's end-of-turn token (and
optional stop strings), greedy or sampled, optionally streamed to the terminal.

Greedy decoding (evaluation, ``paw infer`` without sampling) runs paw's own loop over the model's KV cache: prompts
sorted by length (longest first, as lm-eval does, so a batch pads little and an OOM shows at once), and a row
leaves the batch — its cache rows dropped — as soon as it stops, so late steps run only the rows still going.
The arithmetic per row is transformers' ``generate``'s: the same left-padded prefill, position ids counted from
the attention mask, one token per step.
"""

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
) -> list[str]:
    """Continuations of ``prompts`` (batched, left-padded; greedy unless ``sampling`` says otherwise), each cut at
    the first of ``stop_strings``."""
    import torch

    sampling = sampling or Sampling(max_new_tokens=max_new_tokens)
    if sampling.temperature > 0:
        torch.manual_seed(sampling.seed)
    stops = [tokenizer.convert_tokens_to_ids(t) for t in (stop_tokens or [tokenizer.eos_token])]
    own_loop = sampling.temperature <= 0 and streamer is None and not _virtual_tokens(model)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = (
        sorted(range(len(prompts)), key=lambda i: -len(encoded[i])) if own_loop else list(range(len(prompts)))
    )
    outputs: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    model.eval()
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        ids, mask = _left_padded([encoded[i] for i in chosen], pad, model.device)
        with torch.no_grad():
            if own_loop:
                new = greedy(model, tokenizer, ids, mask, sampling.max_new_tokens, stops, stop_strings or [])
            else:
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
                new = out[:, ids.shape[1] :].tolist()
        texts = tokenizer.batch_decode(new, skip_special_tokens=True)
        for i, text in zip(chosen, texts, strict=True):
            outputs[i] = cut_at_stops(text, stop_strings or [])
    return outputs


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


def greedy(
    model: Model,
    tokenizer: Tokenizer,
    ids: Any,
    mask: Any,
    max_new_tokens: int,
    stop_ids: list[int],
    stop_strings: list[str],
) -> list[list[int]]:
    """Greedy continuations of a left-padded batch, each ending before its stop token or after the token that
    completes a stop string (the caller cuts the text there); finished rows leave the batch and its cache."""
    import inspect

    import torch
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    position = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    last_only = (
        {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(base.forward).parameters else {}
    )
    out = model(input_ids=ids, attention_mask=mask, position_ids=position, past_key_values=cache, **last_only)
    tokens: list[list[int]] = [[] for _ in range(ids.shape[0])]
    alive = list(range(ids.shape[0]))  # the batch rows still generating, in cache order
    last = position[:, -1]
    for step in range(max_new_tokens):
        chosen = out.logits[:, -1].argmax(-1)
        keep = []
        for j, (row, token) in enumerate(zip(alive, chosen.tolist(), strict=True)):
            if token in stop_ids:
                continue
            tokens[row].append(token)
            if stop_strings and any(s in tokenizer.decode(tokens[row][-_TAIL:]) for s in stop_strings):
                continue
            keep.append(j)
        if not keep or step == max_new_tokens - 1:
            break
        if len(keep) < len(alive):
            index = torch.tensor(keep, device=ids.device)
            cache.batch_select_indices(index)
            mask, last, chosen = mask[index], last[index], chosen[index]
            alive = [alive[j] for j in keep]
        mask = torch.cat([mask, mask.new_ones((len(alive), 1))], dim=-1)
        last = last + 1
        out = model(
            input_ids=chosen[:, None], attention_mask=mask, position_ids=last[:, None], past_key_values=cache
        )
    return tokens


_TAIL = 16  # tokens decoded to look for a stop string that the newest token completes


def cut_at_stops(text: str, stops: list[str]) -> str:
    """Text up to the first stop string, as lm-eval's generate_until returns it."""
    for stop in stops:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text
