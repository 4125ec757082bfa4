"""GRPO's data: prompts, and the fields the rewards read (the answer to check a completion against).

A prompt is written as for SFT and preference rows (``paw.data.preference.parse_prompt``): ``prompt`` (text,
verbatim, or chat messages) or ``instruction``/``input`` (the Alpaca prompt, or the chat template with
``data.prompt_template: chat``). Chat prompts go to TRL as messages, so its generation applies the template once
(with the generation prompt); text prompts go as text. Every other field that all rows have is passed to the
reward functions by name; a field a built-in reward reads must be in every row (``file:line`` otherwise).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paw.data.preference import parse_prompt
from paw.data.readers import Record
from paw.data.sft import SftDataOptions, data_report, length_stats, read_and_split, split_counts
from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

PROMPT_FIELDS = ("prompt", "instruction", "input")


def _prompt_tokens(value: str | list[dict[str, str]], tokenizer: Tokenizer) -> int:
    if isinstance(value, str):
        return len(tokenizer(value)["input_ids"])
    if not getattr(tokenizer, "chat_template", None):
        raise PawError("chat prompts need a tokenizer with a chat template; this tokenizer has none")
    rendered = tokenizer.apply_chat_template(value, tokenize=False, add_generation_prompt=True)
    return len(tokenizer(rendered, add_special_tokens=False)["input_ids"])


@dataclass
class PromptSplit:
    examples: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)
    prompt_tokens: list[int] = field(default_factory=list)
    truncated: int = 0  # a prompt too long is dropped, never cut

    def summary(self) -> dict[str, Any]:
        return {
            **split_counts(self),
            "prompt_tokens": length_stats(self.prompt_tokens),
            "fields": sorted(k for k in self.examples[0] if k != "prompt") if self.examples else [],
        }


def shared_fields(records: list[Record], needed: list[str]) -> list[str]:
    """Fields (besides the prompt's) that every row has; PawError at the first row missing a ``needed`` one."""
    for record in records:
        for name in needed:
            if record.row.get(name) is None:
                have = ", ".join(sorted(record.row))
                raise PawError(
                    f"{record.where}: missing field '{name}', which a reward reads (fields: {have})"
                )
    common = set.intersection(*(set(r.row) for r in records)) if records else set()
    return sorted(common - set(PROMPT_FIELDS))


def prompt_split(
    records: list[Record], fields: list[str], tokenizer: Tokenizer, prompt_template: str, max_length: int
) -> PromptSplit:
    split = PromptSplit(rows_read=len(records))
    for record in records:
        value = parse_prompt(record.row, record.where).for_trl(prompt_template)
        tokens = _prompt_tokens(value, tokenizer)
        if tokens >= max_length:
            reason = f"prompt fills max_length (prompt is {tokens} tokens, max_length {max_length})"
            split.dropped.append({"where": record.where, "reason": reason})
            continue
        split.prompt_tokens.append(tokens)
        split.examples.append({"prompt": value, **{name: record.row[name] for name in fields}})
    return split


@dataclass
class PromptData:
    train: PromptSplit
    val: PromptSplit | None
    format: str
    report: dict[str, Any]


def build_prompt_data(options: SftDataOptions, tokenizer: Tokenizer, needed: list[str]) -> PromptData:
    """Read, split and check GRPO prompts; ``needed``: the fields the built-in rewards read."""
    records, val_records, source = read_and_split(options)
    fields = shared_fields(records + val_records, needed)
    train = prompt_split(records, fields, tokenizer, options.prompt_template, options.max_length)
    if not train.examples:
        raise PawError(
            f"{source}: no usable prompts: all {train.rows_read} rows were dropped (prompt too long)"
        )
    val = (
        prompt_split(val_records, fields, tokenizer, options.prompt_template, options.max_length)
        if val_records
        else None
    )
    if val is not None and not val.examples:
        raise PawError(f"{options.val_file or source}: no usable validation prompts")
    summaries = train.summary(), val.summary() if val else None
    report = data_report(options, source, "prompts", *summaries, prompt_template=options.prompt_template)
    return PromptData(train=train, val=val, format="prompts", report=report)


def to_prompt_dataset(split: PromptSplit):
    import datasets

    return datasets.Dataset.from_list(split.examples)
