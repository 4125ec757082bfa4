"""Pretraining a small causal LM from scratch on a token stream, with transformers' Trainer (AdamW, cosine schedule,
checkpoints every ``save_every`` steps into a work dir, so an interrupted build resumes where it stopped), and its
held-out perplexity next to a unigram model's on the same tokens.

The corpus is one stream: each paragraph's tokens followed by EOS. Training rows are consecutive ``seq_len``-token
windows of it (BOS first for families that start every text with one), shuffled by the Trainer's seeded sampler.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paw.utils.hf_types import Model, Tokenizer


@dataclass(frozen=True)
class Recipe:
    steps: int
    lr: float
    batch: int
    seq_len: int
    warmup: int
    seed: int
    save_every: int = 50


def stream(tokenizer: Tokenizer, lines: list[str]) -> list[int]:
    ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
    out: list[int] = []
    for row in ids:
        out += row
        out.append(tokenizer.eos_token_id)
    return out


def windows(tokens: list[int], seq_len: int, bos: int | None) -> list[list[int]]:
    """Consecutive windows of ``seq_len`` tokens (the last one shorter), each after BOS when there is one."""
    step = seq_len - (bos is not None)
    rows = [tokens[i : i + step] for i in range(0, len(tokens), step)]
    return [([bos] if bos is not None else []) + row for row in rows if len(row) > 1]


class _Windows:
    def __init__(self, rows: list[list[int]]):
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        import torch

        ids = torch.tensor(self.rows[i])
        return {"input_ids": ids, "labels": ids}


def pretrain(model: Model, train_rows: list[list[int]], recipe: Recipe, work_dir: Path) -> dict[str, Any]:
    """Train ``model`` in place on full-length windows; resume from the newest checkpoint in ``work_dir``."""
    from transformers import PrinterCallback, Trainer, TrainingArguments

    from paw.utils.hf import quiet_hf

    quiet_hf()
    rows = [row for row in train_rows if len(row) == recipe.seq_len]
    args = TrainingArguments(
        output_dir=str(work_dir),
        max_steps=recipe.steps,
        per_device_train_batch_size=recipe.batch,
        learning_rate=recipe.lr,
        lr_scheduler_type="cosine",
        warmup_steps=recipe.warmup,
        weight_decay=0.01,
        adam_beta2=0.98,
        max_grad_norm=1.0,
        logging_steps=max(1, recipe.steps // 20),
        save_strategy="steps",
        save_steps=recipe.save_every,
        save_total_limit=1,
        seed=recipe.seed,
        data_seed=recipe.seed,
        report_to=[],
        disable_tqdm=True,
        dataloader_num_workers=0,
        dataloader_pin_memory=False,  # windows are a few KB; pinning only warns on a CPU-only machine
    )
    trainer = Trainer(model=model, args=args, train_dataset=_Windows(rows))
    trainer.remove_callback(PrinterCallback)  # the losses go to zoo_model.json, not the terminal
    resume = any(work_dir.glob("checkpoint-*"))
    trainer.train(resume_from_checkpoint=True if resume else None)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return {"train_windows": len(rows), "resumed": resume, "first_loss": losses[0], "last_loss": losses[-1]}


def heldout_perplexity(model: Model, rows: list[list[int]]) -> dict[str, float]:
    """Mean next-token loss over every predicted token of ``rows`` (BOS is never predicted), as a perplexity."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:  # windows differ in length only at the end; one at a time keeps it simple and exact
            ids = torch.tensor([row], device=model.device)
            logits = model(input_ids=ids).logits.float()[0, :-1]
            loss = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum")
            total += loss.item()
            count += len(row) - 1
    return {"tokens": count, "nll": total / count, "perplexity": math.exp(total / count)}


def unigram_perplexity(train_tokens: list[int], rows: list[list[int]], vocab: int) -> float:
    """Perplexity of an add-one unigram model fitted on ``train_tokens``, on the tokens ``rows`` predict."""
    from collections import Counter

    counts = Counter(train_tokens)
    norm = len(train_tokens) + vocab
    nll = [-math.log((counts[t] + 1) / norm) for row in rows for t in row[1:]]
    return math.exp(sum(nll) / len(nll))
