"""Greedy generation with exact-match scoring: the held-out accuracy of an instruction task.

Prompts are built as in training (``paw_prompt.json`` next to an adapter: Alpaca prompt or chat template),
generation is batched with left padding and stops on the tokenizer's EOS and the template's end-of-turn token.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from paw.data.formats import alpaca_messages, alpaca_prompt


@dataclass(frozen=True)
class Prediction:
    prompt: str
    prediction: str
    gold: str
    correct: bool


def build_prompt(row: dict[str, Any], tokenizer: Any, prompt_template: str = "alpaca") -> str:
    if prompt_template == "chat":
        messages = alpaca_messages(row, "row")[:1]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return alpaca_prompt(row["instruction"], row.get("input") or "")


def normalize(text: str) -> str:
    return " ".join(text.strip().lower().rstrip(".").split())


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    max_new_tokens: int = 16,
    batch_size: int = 16,
    stop_tokens: list[str] | None = None,
    stop_strings: list[str] | None = None,
) -> list[str]:
    """Greedy continuations of ``prompts`` (batched, left-padded), cut at the first of ``stop_strings``."""
    import torch

    stops = [tokenizer.convert_tokens_to_ids(t) for t in (stop_tokens or [tokenizer.eos_token])]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    try:
        model.eval()
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(
                prompts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=False,
            ).to(model.device)
            with torch.no_grad():
                out = model.generate(
                    **batch,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    eos_token_id=stops,
                    pad_token_id=tokenizer.pad_token_id,
                    **({"stop_strings": stop_strings, "tokenizer": tokenizer} if stop_strings else {}),
                )
            new = out[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            outputs += [_cut(text, stop_strings or []) for text in texts]
    finally:
        tokenizer.padding_side = side
    return outputs


def _cut(text: str, stops: list[str]) -> str:
    """Text up to the first stop string, as lm-eval's generate_until returns it."""
    for stop in stops:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text


def exact_match(
    model: Any,
    tokenizer: Any,
    rows: list[dict[str, Any]],
    prompt_template: str = "alpaca",
    max_new_tokens: int = 8,
) -> tuple[float, list[Prediction]]:
    """Accuracy of greedy answers against ``output`` (case/whitespace/final period ignored)."""
    prompts = [build_prompt(row, tokenizer, prompt_template) for row in rows]
    texts = generate(model, tokenizer, prompts, max_new_tokens)
    predictions = [
        Prediction(p, t, row["output"], normalize(t) == normalize(row["output"]))
        for p, t, row in zip(prompts, texts, rows, strict=True)
    ]
    return sum(p.correct for p in predictions) / max(1, len(predictions)), predictions
