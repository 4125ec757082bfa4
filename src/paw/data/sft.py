"""Build tokenised SFT datasets: prompt masked from the loss, truncation counted, train/val split, and the
``data_validation.json`` report.
"""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paw.data.formats import detect_format, row_segments, segment_ids
from paw.data.readers import Record, read_hub, read_rows, renamed
from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

IGNORE_INDEX = -100
MAX_LISTED_DROPS = 100


@dataclass(frozen=True)
class SftDataOptions:
    train_file: str | None
    val_file: str | None = None
    hub_dataset: str | None = None
    hub_split: str = "train"
    hub_name: str | None = None
    hub_val_split: str | None = None
    columns: tuple[tuple[str, str], ...] = ()  # (source field, paw field) renames
    format: str = "auto"
    prompt_template: str = "alpaca"
    train_on_prompt: bool = False
    val_ratio: float = 0.0
    max_length: int = 1024
    max_samples: int | None = None
    seed: int = 42


@dataclass
class TokenizedSplit:
    """Examples (``input_ids``/``labels``) and what happened to the rows on the way."""

    examples: list[dict[str, list[int]]] = field(default_factory=list)
    rows_read: int = 0
    truncated: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        lengths = [len(e["input_ids"]) for e in self.examples]
        targets = [sum(label != IGNORE_INDEX for label in e["labels"]) for e in self.examples]
        return {**split_counts(self), "tokens": length_stats(lengths), "target_tokens": length_stats(targets)}


def split_counts(split: Any) -> dict[str, Any]:
    """What happened to a split's rows (any split with ``rows_read``, ``examples``, ``truncated``, ``dropped``):
    the counts of data_validation.json, the first dropped rows with their ``file:line`` and reason."""
    return {
        "rows_read": split.rows_read,
        "examples": len(split.examples),
        "truncated": split.truncated,
        "dropped": len(split.dropped),
        "dropped_by_reason": dict(Counter(d["reason"].split(" (")[0] for d in split.dropped)),
        "dropped_rows": split.dropped[:MAX_LISTED_DROPS],
    }


def length_stats(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "total": sum(ordered),
        "min": ordered[0],
        "mean": round(statistics.fmean(ordered), 2),
        "p50": ordered[len(ordered) // 2],
        "p95": ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)],
        "max": ordered[-1],
    }


def adds_bos(tokenizer: Tokenizer) -> bool:
    bos = tokenizer.bos_token_id
    return bos is not None and tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]


def tokenize_records(
    records: list[Record], options: SftDataOptions, tokenizer: Tokenizer, fmt: str
) -> TokenizedSplit:
    """Tokenise each row's text once and mask by segment, so the loss mask follows the prompt/completion boundary
    and the tokens are the ones evaluation scores (``segment_ids``).

    Chat templates write their own BOS; the Alpaca prompt and plain text get the tokenizer's BOS when it uses one.
    """
    split = TokenizedSplit(rows_read=len(records))
    uses_template_bos = fmt == "messages" or (fmt == "alpaca" and options.prompt_template == "chat")
    bos = [] if uses_template_bos or not adds_bos(tokenizer) else [tokenizer.bos_token_id]
    for record in records:
        segments = row_segments(record.row, record.where, fmt, options.prompt_template, tokenizer)
        input_ids, labels = list(bos), [IGNORE_INDEX] * len(bos)
        prompt_tokens, completion_tokens = len(bos), 0
        for (_, in_loss), ids in zip(segments, segment_ids(tokenizer, segments), strict=True):
            input_ids += ids
            labels += ids if (in_loss or options.train_on_prompt) else [IGNORE_INDEX] * len(ids)
            if in_loss:
                completion_tokens += len(ids)
            elif not completion_tokens:
                prompt_tokens += len(ids)
        if not any(text.strip() and text.strip() != tokenizer.eos_token for text, loss in segments if loss):
            split.dropped.append({"where": record.where, "reason": "empty completion"})
            continue
        if len(input_ids) > options.max_length:
            input_ids, labels = input_ids[: options.max_length], labels[: options.max_length]
            if prompt_tokens >= options.max_length:
                reason = f"completion truncated away (prompt is {prompt_tokens} tokens, max_length {options.max_length})"
                split.dropped.append({"where": record.where, "reason": reason})
                continue
            split.truncated += 1
        split.examples.append({"input_ids": input_ids, "labels": labels})
    return split


def _resolve_format(records: list[Record], requested: str) -> str:
    if not records:
        return requested
    return detect_format(records[0].row, records[0].where) if requested == "auto" else requested


def _read(options: SftDataOptions) -> list[Record]:
    if options.train_file:
        return read_rows(options.train_file)
    return read_hub(
        options.hub_dataset or "",
        options.hub_split,
        options.hub_name,
        fix="Export it to a local .jsonl and set data.train_file",
    )


def read_and_split(options: SftDataOptions) -> tuple[list[Record], list[Record], str]:
    """(train rows, validation rows, source name): the val file or hub split, or a seeded ``val_ratio`` hold-out;
    then ``max_samples`` of train; fields renamed by ``columns``. Raises PawError on an empty dataset or a split
    that leaves nothing to train on."""
    source = options.train_file or f"{options.hub_dataset}[{options.hub_split}]"
    records = renamed(_read(options), options.columns)
    if not records:
        raise PawError(f"{source}: the dataset is empty (no rows)")
    rng = random.Random(options.seed)
    val_records: list[Record] = []
    if options.val_file or (options.hub_val_split and not options.train_file):
        if options.val_file:
            val_records = read_rows(options.val_file)
        else:
            fix = "Export it to a local .jsonl and set data.val_file"
            val_records = read_hub(
                options.hub_dataset or "", options.hub_val_split, options.hub_name, fix=fix
            )
        val_records = renamed(val_records, options.columns)
        if not val_records:
            where = options.val_file or f"{options.hub_dataset}[{options.hub_val_split}]"
            raise PawError(f"{where}: the validation dataset is empty (no rows)")
    elif options.val_ratio > 0:
        order = list(range(len(records)))
        rng.shuffle(order)
        n_val = max(1, round(len(records) * options.val_ratio))
        if n_val >= len(records):
            raise PawError(
                f"data.val_ratio {options.val_ratio} leaves no training rows out of {len(records)}"
            )
        held = set(order[:n_val])
        val_records = [records[i] for i in sorted(held)]
        records = [r for i, r in enumerate(records) if i not in held]
    if options.max_samples is not None and options.max_samples < len(records):
        records = [records[i] for i in sorted(rng.sample(range(len(records)), options.max_samples))]
    return records, val_records, source


@dataclass
class SftData:
    train: TokenizedSplit
    val: TokenizedSplit | None
    format: str
    report: dict[str, Any]


def build_sft_data(options: SftDataOptions, tokenizer: Tokenizer) -> SftData:
    """Read, split, tokenise; raise PawError on an empty dataset or when every example is truncated away."""
    records, val_records, source = read_and_split(options)
    fmt = _resolve_format(records, options.format)
    train = tokenize_records(records, options, tokenizer, fmt)
    if not train.examples:
        reasons = ", ".join(f"{k}: {v}" for k, v in train.summary()["dropped_by_reason"].items())
        raise PawError(
            f"{source}: no usable training examples: all {train.rows_read} rows were dropped ({reasons}); "
            f"raise data.max_length (now {options.max_length}) or fix the data"
        )
    val = tokenize_records(val_records, options, tokenizer, fmt) if val_records else None
    if val is not None and not val.examples:
        raise PawError(f"{options.val_file or source}: no usable validation examples after truncation")
    template = options.prompt_template if fmt == "alpaca" else ("chat" if fmt == "messages" else None)
    report = data_report(
        options, source, fmt, train.summary(), val.summary() if val else None, prompt_template=template
    )
    return SftData(train=train, val=val, format=fmt, report=report)


def data_report(
    options: SftDataOptions,
    source: str,
    fmt: str,
    train: dict[str, Any],
    val: dict[str, Any] | None,
    **details: Any,
) -> dict[str, Any]:
    """A run's data_validation.json: where the train and validation rows came from, the format (and ``details``:
    prompt template, labels, ...), each split's summary; ``warnings`` is filled in by the recipe."""
    return {
        "source": source,
        "val_source": options.val_file
        or (f"{options.val_ratio:.0%} of train (seed {options.seed})" if val else None),
        "format": fmt,
        **details,
        "max_length": options.max_length,
        "train": train,
        "val": val,
        "warnings": [],
    }


def to_dataset(split: TokenizedSplit):
    """A ``datasets.Dataset`` with ``input_ids`` and ``labels``, ready for TRL's SFTTrainer."""
    import datasets

    return datasets.Dataset.from_dict(
        {
            "input_ids": [e["input_ids"] for e in split.examples],
            "labels": [e["labels"] for e in split.examples],
        }
    )
