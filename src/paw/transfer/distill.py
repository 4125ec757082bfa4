"""Answers from the source: the source base with its adapter answers the prompts of a data file (greedy or
sampled), and its answers replace the file's own, so a refine on the rows teaches the target what the adapter
*does*.

A weight-space method maps ΔW through maps between the two models and fails where no good map exists (between
the zoo's independently pretrained families, benchmarks/RESULTS.md); the answers need no map, so they carry over
whatever the shapes, tokenizers or families. Trans-LoRA (Wang et al., NeurIPS 2024) moves an adapter the same way,
training the target on the source adapter's outputs. Only the prompts of the file are read: its answers, when it
has any, are used to report how often the source agrees with them. ``paw transfer --refine-labels source``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from paw.errors import PawError

MAX_NEW_TOKENS = 256  # an answer longer than this is cut there (and learnt cut)
ANSWER_FIELD = {"alpaca": "output", "prompt_completion": "completion"}


def _prompt(row: dict[str, Any], where: str, fmt: str, prompt_template: str, tokenizer: Any) -> str:
    """The text before the row's last answer, rendered as training renders it (Alpaca prompt or chat template)."""
    from paw.data.formats import row_segments

    segments = row_segments(row, where, fmt, prompt_template, tokenizer)
    last = max(i for i, (_, in_loss) in enumerate(segments) if in_loss)
    return "".join(text for text, _ in segments[:last])


def _relabelled(row: dict[str, Any], fmt: str, answer: str) -> dict[str, Any]:
    """``row`` with its last answer replaced by ``answer``."""
    if fmt in ANSWER_FIELD:
        return {**row, ANSWER_FIELD[fmt]: answer}
    messages = [dict(m) for m in row["messages"]]
    last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
    messages[last]["content"] = answer
    return {**row, "messages": messages}


def _original(row: dict[str, Any], fmt: str) -> str:
    if fmt in ANSWER_FIELD:
        return str(row[ANSWER_FIELD[fmt]])
    return str([m for m in row["messages"] if m["role"] == "assistant"][-1]["content"])


def prompt_rows(
    data_file: str, examples: int, columns: Iterable[tuple[str, str]] = (), data_format: str = "auto"
) -> tuple[list[Any], list[str]]:
    """The first ``examples`` rows of ``data_file`` (fields renamed by ``columns``) and their formats
    (``data_format``, or detected per row), each one a prompt the source can answer.

    Raises:
        PawError: no rows, or a row with no prompt to answer (``text``, ``classification``), naming the row.
    """
    from paw.data.formats import detect_format
    from paw.data.readers import read_rows, renamed

    records = renamed(read_rows(data_file)[:examples], columns)
    if not records:
        raise PawError(f"--refine-data {data_file}: no rows to answer")
    formats = [
        detect_format(record.row, record.where) if data_format == "auto" else data_format
        for record in records
    ]
    for record, fmt in zip(records, formats, strict=True):
        if fmt not in ("alpaca", "messages", "prompt_completion"):
            raise PawError(
                f"{record.where}: a {fmt} row has no prompt for the source to answer; --refine-labels source "
                "needs alpaca, chat (messages) or prompt/completion rows"
            )
    return records, formats


def source_answers(
    source: str,
    adapter: Path,
    data_file: str,
    out: Path,
    examples: int,
    max_new_tokens: int = MAX_NEW_TOKENS,
    models_dir: str | None = None,
    temperature: float = 0.0,
    seed: int = 0,
    columns: Iterable[tuple[str, str]] = (),
    data_format: str = "auto",
) -> dict[str, Any]:
    """Write the first ``examples`` rows of ``data_file`` to ``out`` (JSONL) with the source adapter's answers in
    place of theirs, prompted as the adapter was trained (its ``paw_prompt.json``: Alpaca prompt or chat template,
    stop tokens); a prompt answered with nothing is left out; rows are read (and written) with their fields renamed
    by ``columns``, in ``data_format`` (or detected). Greedy by default; ``temperature`` > 0 samples (one
    answer per row, seeded), for prompts with many right answers: greedy gives each the adapter's single likeliest
    one, so the target learns the mode, not the spread ("a kind of fruit?" → always "banana"). Returns what was
    done: rows written, prompts left unanswered, how many answers equal the file's, seconds.

    Raises:
        PawError: what ``prompt_rows`` refuses, or no prompt answered.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from paw.models.chat import PROMPT_SPEC_FILE
    from paw.models.generate import Sampling, generate
    from paw.models.load import load_tokenizer
    from paw.models.resolve import resolve_model
    from paw.utils.io import atomic_write_text

    started = time.perf_counter()
    records, formats = prompt_rows(data_file, examples, columns, data_format)
    spec_file = Path(adapter) / PROMPT_SPEC_FILE
    spec = json.loads(spec_file.read_text(encoding="utf-8")) if spec_file.is_file() else {}
    template = "chat" if spec.get("prompt_template") == "chat" else "alpaca"
    resolved = resolve_model(source, models_dir)
    tokenizer = load_tokenizer(resolved)
    prompts = [
        _prompt(record.row, record.where, fmt, template, tokenizer)
        for record, fmt in zip(records, formats, strict=True)
    ]
    cuda = torch.cuda.is_available()  # bf16 on a GPU, as the source was most likely trained; fp32 on the CPU
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    model = AutoModelForCausalLM.from_pretrained(resolved.location, dtype=dtype).to("cuda" if cuda else "cpu")
    model = PeftModel.from_pretrained(model, str(adapter)).eval()
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)
    answers = generate(model, tokenizer, prompts, stop_tokens=spec.get("stop_tokens"), sampling=sampling)
    answered = [
        (record, fmt, answer.strip())
        for record, fmt, answer in zip(records, formats, answers, strict=True)
        if answer.strip()  # an empty answer teaches nothing (SFT would drop the row)
    ]
    if not answered:
        raise PawError(
            f"--refine-labels source: the source adapter answered none of the {len(records)} prompts of "
            f"{data_file} (it ends every answer at once); there is nothing to refine on"
        )
    rows = [_relabelled(record.row, fmt, answer) for record, fmt, answer in answered]
    agree = sum(answer == _original(record.row, fmt).strip() for record, fmt, answer in answered)
    atomic_write_text(out, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    return {
        "labels": "source",
        "file": str(out),
        "rows": len(rows),
        "unanswered": len(records) - len(rows),
        "agree_with_data": agree,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "seconds": round(time.perf_counter() - started, 2),
    }
