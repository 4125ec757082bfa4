"""Batched generation: left padding, stop on the tokenizer's EOS and the chat template's end-of-turn token (and
optional stop strings), greedy or sampled, optionally streamed to the terminal."""

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
                    max_new_tokens=sampling.max_new_tokens,
                    eos_token_id=stops,
                    pad_token_id=tokenizer.pad_token_id,
                    streamer=streamer,
                    **sampling.kwargs(),
                    **({"stop_strings": stop_strings, "tokenizer": tokenizer} if stop_strings else {}),
                )
            new = out[:, batch["input_ids"].shape[1] :]
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            outputs += [cut_at_stops(text, stop_strings or []) for text in texts]
    finally:
        tokenizer.padding_side = side
    return outputs


def cut_at_stops(text: str, stops: list[str]) -> str:
    """Text up to the first stop string, as lm-eval's generate_until returns it."""
    for stop in stops:
        if stop and stop in text:
            text = text.split(stop, 1)[0]
    return text
