"""Tiny models derived from a built-in one, with a known relation to it: source/target pairs for transfer.

``paw-tiny/<family>-<variant>`` names one (built on first use and cached like the base):
- ``upgrade``: the base fully fine-tuned further on other text (antonym and sentiment rows), the tiny analogue
  of a model's next release;
- ``deep``: the base made twice as deep (each layer followed by an identity copy), then fine-tuned like upgrade;
- ``rotated``: the same function in a rotated residual basis, then fine-tuned like upgrade (only a residual map,
  ``paw transfer --method align``, can carry an adapter across).
The functions also work on any local model dir (the transfer quality study and tests use them directly).
"""

from __future__ import annotations

import random
from pathlib import Path

from paw.data.formats import alpaca_prompt
from paw.data.synthetic import generate_alpaca


def fine_tune(model_dir: Path, out: Path, steps: int, seed: int = 1) -> Path:
    """Full fine-tune on other text (antonym and sentiment rows): the "upgrade" of a base model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    rows = generate_alpaca(400, seed=seed, subtasks=("antonym", "sentiment"))
    texts = [alpaca_prompt(r["instruction"], r["input"]) + r["output"] + tokenizer.eos_token for r in rows]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = tokenizer(rng.sample(texts, 8), return_tensors="pt", padding=True)
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def grow_deeper(model_dir: Path, out: Path) -> Path:
    """Net2Net-style deepening: after every layer insert a copy whose o_proj/down_proj are zero (identity)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = AutoModelForCausalLM.from_pretrained(model_dir)
    spec = {k: v for k, v in AutoConfig.from_pretrained(model_dir).to_dict().items() if k != "layer_types"}
    depth = spec["num_hidden_layers"]
    spec["num_hidden_layers"] = 2 * depth
    config = type(source.config)(**spec)
    grown = AutoModelForCausalLM.from_config(config)
    state = source.state_dict()
    new_state = {}
    for key, value in state.items():
        if ".layers." not in key:
            new_state[key] = value
            continue
        head, rest = key.split(".layers.", 1)
        layer, tail = rest.split(".", 1)
        new_state[f"{head}.layers.{2 * int(layer)}.{tail}"] = value
        zero = tail.endswith(("o_proj.weight", "down_proj.weight"))
        new_state[f"{head}.layers.{2 * int(layer) + 1}.{tail}"] = (
            torch.zeros_like(value) if zero else value.clone()
        )
    grown.load_state_dict(new_state)
    grown.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def rotate(model_dir: Path, out: Path, seed: int = 0) -> Path:
    """The same function in a rotated residual basis (E Rᵀ, W_in Rᵀ, R W_out; RMSNorm weights are 1)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    d = model.config.hidden_size
    rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed)))
    reads = tuple(f"{n}_proj.weight" for n in ("q", "k", "v", "gate", "up")) + (
        "embed_tokens.weight",
        "lm_head.weight",
    )
    state = {}
    for key, value in model.state_dict().items():
        if key.endswith(reads):
            value = value @ rotation.T
        elif key.endswith(("o_proj.weight", "down_proj.weight")):
            value = rotation @ value
        state[key] = value
    model.load_state_dict(state)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


FINE_TUNE_STEPS = 60


def _fine_tuned(make):
    def build(model_dir: Path, out: Path) -> Path:
        staged = make(model_dir, out.with_name(out.name + ".pre"))
        return fine_tune(staged, out, FINE_TUNE_STEPS)

    return build


VARIANTS = {
    "upgrade": lambda model_dir, out: fine_tune(model_dir, out, FINE_TUNE_STEPS),
    "deep": _fine_tuned(grow_deeper),
    "rotated": _fine_tuned(rotate),
}
