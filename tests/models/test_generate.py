"""paw's greedy loop (rows leave the batch when they stop, waiting prompts join it) gives transformers'
``generate`` outputs, token for token, for every family, whatever the batch size."""

import pytest
import torch

from paw.models import generate as generation
from paw.models.generate import cut_at_stops, generate

PROMPTS = [
    "Question: what is two plus two?\nAnswer:",
    "Hi",
    "The quick brown fox jumps over the lazy dog and then",
    "A list:\n1.",
    "Once upon a time",
]


def _reference(model, tokenizer, prompts, max_new_tokens, stops):
    """transformers' generate on the whole left-padded batch, cut at the first stop string."""
    tokenizer.padding_side = "left"
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
            **({"stop_strings": stops, "tokenizer": tokenizer} if stops else {}),
        )
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    return [cut_at_stops(text, stops) for text in texts]


@pytest.mark.parametrize("family", ["qwen2", "llama", "gemma2", "phi3"])
def test_greedy_loop_equals_transformers_generate(family, paw_cache, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.models.tiny import tiny_model_dir

    path = tiny_model_dir(f"paw-tiny/{family}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    joins = []
    join = generation._Batch.join
    monkeypatch.setattr(
        generation._Batch, "join", lambda self, other: joins.append(other.rows) or join(self, other)
    )
    for stops in ([], ["e", "\n"]):
        expected = _reference(model, tokenizer, PROMPTS, 20, stops)
        if stops:  # rows stop at different steps: the loop drops them from the batch as it goes
            assert len({len(text) for text in expected}) > 1 and min(len(t) for t in expected) < 20
        for batch_size in (1, 2, 5):
            joins.clear()
            assert generate(model, tokenizer, PROMPTS, 20, batch_size, stop_strings=stops) == expected
            # a stopped row's place goes to the next prompt, except on a sliding-window cache (fixed batches)
            sliding = family == "gemma2"
            assert bool(joins) == (bool(stops) and 1 < batch_size < len(PROMPTS) and not sliding)
