"""Preference data: pairs for DPO (a prompt, a chosen and a rejected completion) and labelled single completions
for KTO, tokenised exactly as SFT tokenises a prompt and its answer (so the adapter is tuned on the prompts it was
fine-tuned and is evaluated with), with the ``data_validation.json`` report.

Rows (any of the data file types; ``data.columns`` renames fields first):

- ``{"prompt": "...", "chosen": "...", "rejected": "..."}``: the prompt verbatim, as prompt/completion SFT rows;
- ``{"instruction": "...", "input": "...", "chosen": "...", "rejected": "..."}``: the Alpaca prompt, or the chat
  template with ``data.prompt_template: chat`` (LLaMA-Factory's preference rows);
- ``{"prompt": [messages], "chosen": [{"role": "assistant", ...}], "rejected": [...]}``: chat, TRL's
  conversational preference rows (a string prompt with message completions is one user turn);
- ``{"chosen": [messages], "rejected": [messages]}``: UltraFeedback's whole conversations (its ``prompt`` field,
  a copy of the first turn, is then not needed), which must agree up to their last (assistant) message: that
  message is the completion, the rest the prompt;
- KTO: ``{"prompt": ..., "completion": ..., "label": true|false}`` with the same prompt forms.

A malformed row is a PawError naming ``file:line``; a pair whose completions are equal, and an example whose
prompt alone fills ``data.max_length``, are dropped and listed in the report.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paw.data.formats import alpaca_prompt, check_messages, row_segments, segment_ids
from paw.data.readers import Record
from paw.data.sft import SftDataOptions, adds_bos, data_report, length_stats, read_and_split, split_counts
from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

PAIRED, UNPAIRED = "pairs", "unpaired"
COMPLETIONS = {PAIRED: ("chosen", "rejected"), UNPAIRED: ("completion",)}


@dataclass(frozen=True)
class Prompt:
    """A row's prompt in one of three forms: ``text`` (verbatim), ``alpaca`` (instruction + input), ``chat``."""

    kind: str
    text: str = ""
    instruction: str = ""
    input: str = ""
    messages: tuple[tuple[str, str], ...] = ()

    def sft_row(self, completion: str) -> tuple[dict[str, Any], str]:
        """The SFT row (and its format) that puts ``completion`` after this prompt."""
        if self.kind == "text":
            return {"prompt": self.text, "completion": completion}, "prompt_completion"
        if self.kind == "alpaca":
            return {"instruction": self.instruction, "input": self.input, "output": completion}, "alpaca"
        messages = [{"role": r, "content": c} for r, c in self.messages]
        return {"messages": [*messages, {"role": "assistant", "content": completion}]}, "messages"

    def chat(self, prompt_template: str) -> bool:
        """Whether the prompt is rendered by the chat template."""
        return self.kind == "chat" or (self.kind == "alpaca" and prompt_template == "chat")

    def for_trl(self, prompt_template: str) -> str | list[dict[str, str]]:
        """The prompt as TRL's trainers take it: text (tokenised as is), or messages they render with the chat
        template; the same prompt SFT builds."""
        if self.kind == "text":
            return self.text
        if not self.chat(prompt_template):
            return alpaca_prompt(self.instruction, self.input)
        if self.kind == "alpaca":
            user = f"{self.instruction}\n\n{self.input}" if self.input.strip() else self.instruction
            return [{"role": "user", "content": user}]
        return [{"role": role, "content": content} for role, content in self.messages]


def _text(row: dict[str, Any], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str):
        got = "missing" if value is None else f"a {type(value).__name__}"
        raise PawError(f"{where}: field '{key}' must be a string ({got})")
    return value


def _completion_message(value: Any, key: str, where: str) -> str:
    """A completion given as messages: exactly one assistant message (TRL's conversational completions)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or len(value) != 1:
        raise PawError(f"{where}: field '{key}' must be a string or one assistant message")
    message = check_messages({"messages": value}, f"{where}: {key}")[0]
    return message["content"]


def _conversation_split(
    row: dict[str, Any], keys: tuple[str, ...], where: str
) -> tuple[Prompt, dict[str, str]]:
    """UltraFeedback rows: whole conversations per completion, equal up to the last (assistant) message."""
    flat = [k for k in keys if not isinstance(row[k], list)]
    if flat:
        raise PawError(
            f"{where}: {', '.join(repr(k) for k in keys if k not in flat)} is a conversation but "
            f"{', '.join(repr(k) for k in flat)} is not; give whole conversations, or a prompt and one-message "
            "completions"
        )
    conversations = {k: check_messages({"messages": row[k]}, f"{where}: {k}") for k in keys}
    prefixes = {k: c[:-1] for k, c in conversations.items()}
    for key, conversation in conversations.items():
        if conversation[-1]["role"] != "assistant":
            raise PawError(f"{where}: the last message of '{key}' must be the assistant's completion")
        if not prefixes[key]:
            raise PawError(f"{where}: '{key}' has no prompt before its completion")
    if len({str(p) for p in prefixes.values()}) != 1:
        raise PawError(
            f"{where}: {' and '.join(repr(k) for k in keys)} differ before their last message; "
            "a preference pair needs one prompt (give it as 'prompt')"
        )
    prompt = Prompt("chat", messages=tuple((m["role"], m["content"]) for m in prefixes[keys[0]]))
    return prompt, {k: c[-1]["content"] for k, c in conversations.items()}


def parse_row(row: dict[str, Any], where: str, kind: str) -> tuple[Prompt, dict[str, str]]:
    """(prompt, completions by field) of a pairs row (``chosen``/``rejected``) or an unpaired row
    (``completion``). Raises PawError naming ``where`` and the field."""
    keys = COMPLETIONS[kind]
    missing = [k for k in keys if k not in row or row[k] is None]
    if missing:
        raise PawError(
            f"{where}: missing field {', '.join(repr(k) for k in missing)}; "
            f"{'a preference pair' if kind == PAIRED else 'a KTO row'} has {', '.join(keys)} and a prompt "
            "(prompt, or instruction/input)"
        )
    as_messages = any(isinstance(row[k], list) for k in keys)
    whole = any(isinstance(row[k], list) and len(row[k]) > 1 for k in keys)
    if whole or (as_messages and "prompt" not in row and "instruction" not in row):
        return _conversation_split(row, keys, where)  # UltraFeedback: 'prompt' repeats the first turn
    completions = {k: _completion_message(row[k], k, where) for k in keys}
    return parse_prompt(row, where, as_messages), completions


def parse_prompt(row: dict[str, Any], where: str, as_messages: bool = False) -> Prompt:
    """A row's prompt: ``prompt`` (text, or messages) or ``instruction``/``input``; ``as_messages``: a text prompt
    before message completions is one user turn."""
    if "prompt" in row:
        value = row["prompt"]
        if isinstance(value, list):
            messages = check_messages({"messages": [*value, {"role": "assistant", "content": ""}]}, where)[
                :-1
            ]
            return Prompt("chat", messages=tuple((m["role"], m["content"]) for m in messages))
        text = _text(row, "prompt", where)
        return Prompt("chat", messages=(("user", text),)) if as_messages else Prompt("text", text=text)
    if "instruction" in row:
        input_text = row.get("input") or ""
        if not isinstance(input_text, str):
            raise PawError(f"{where}: field 'input' must be a string")
        return Prompt("alpaca", instruction=_text(row, "instruction", where), input=input_text)
    raise PawError(f"{where}: no prompt: give 'prompt' (text or messages) or 'instruction' (and 'input')")


def kto_label(row: dict[str, Any], where: str) -> bool:
    """KTO's desirable flag: true/false (or 1/0)."""
    value = row.get("label")
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise PawError(f"{where}: field 'label' must be true (desirable) or false (undesirable), got {value!r}")


@dataclass
class Tokenizing:
    """How a prompt and a completion become token ids (the SFT tokenisation: the text once, split by segment)."""

    tokenizer: Tokenizer
    prompt_template: str
    text_rows: bool = False  # also keep the rows as TRL's text trainers take them

    def encode(self, prompt: Prompt, completion: str, where: str) -> tuple[list[int], list[int]]:
        """(prompt ids, completion ids, with the EOS or end-of-turn the SFT rows end with)."""
        sft_row, fmt = prompt.sft_row(completion)
        segments = row_segments(sft_row, where, fmt, self.prompt_template, self.tokenizer)
        in_loss = segments[-1][1]
        if not in_loss:
            raise PawError(f"{where}: the chat template renders nothing after the completion's prompt")
        templated = prompt.chat(self.prompt_template)
        ids = [] if templated or not adds_bos(self.tokenizer) else [self.tokenizer.bos_token_id]
        *prompt_pieces, completion_ids = segment_ids(self.tokenizer, segments)
        return ids + [token for piece in prompt_pieces for token in piece], completion_ids


@dataclass
class PreferenceSplit:
    """Tokenised examples and what happened to the rows on the way."""

    kind: str
    examples: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    truncated: int = 0
    dropped: list[dict[str, str]] = field(default_factory=list)
    prompt_forms: Counter = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        summary = {
            **split_counts(self),
            "prompt_forms": dict(self.prompt_forms),
            "prompt_tokens": length_stats([len(e["prompt_ids"]) for e in self.examples]),
        }
        for key in COMPLETIONS[self.kind]:
            summary[f"{key}_tokens"] = length_stats([len(e[f"{key}_ids"]) for e in self.examples])
        if self.kind == UNPAIRED:
            summary["desirable"] = sum(e["label"] for e in self.examples)
        return summary


def _fit(
    prompt: list[int], completions: dict[str, list[int]], max_length: int
) -> tuple[dict[str, list[int]], bool]:
    """Completions cut so prompt + completion fits ``max_length`` (the prompt is kept whole); whether any was."""
    room = max_length - len(prompt)
    cut = {k: ids[:room] for k, ids in completions.items()}
    return cut, any(len(ids) > room for ids in completions.values())


def tokenize_split(
    records: list[Record], kind: str, tokenizing: Tokenizing, max_length: int
) -> PreferenceSplit:
    split = PreferenceSplit(kind=kind, rows_read=len(records))
    for record in records:
        prompt, completions = parse_row(record.row, record.where, kind)
        label = kto_label(record.row, record.where) if kind == UNPAIRED else None
        if kind == PAIRED and completions["chosen"].strip() == completions["rejected"].strip():
            split.dropped.append({"where": record.where, "reason": "chosen equals rejected"})
            continue
        if any(not text.strip() for text in completions.values()):
            split.dropped.append({"where": record.where, "reason": "empty completion"})
            continue
        ids: dict[str, list[int]] = {}
        for key, text in completions.items():
            prompt_ids, ids[key] = tokenizing.encode(prompt, text, record.where)
        if len(prompt_ids) >= max_length:
            reason = f"prompt fills max_length (prompt is {len(prompt_ids)} tokens, max_length {max_length})"
            split.dropped.append({"where": record.where, "reason": reason})
            continue
        ids, truncated = _fit(prompt_ids, ids, max_length)
        split.truncated += truncated
        split.prompt_forms[prompt.kind] += 1
        example: dict[str, Any] = {"prompt_ids": prompt_ids, **{f"{k}_ids": v for k, v in ids.items()}}
        if label is not None:
            example["label"] = label
        if tokenizing.text_rows:  # for trainers that tokenise text rows themselves (KTO, ORPO, SimPO)
            chat = prompt.chat(tokenizing.prompt_template)
            example["prompt"] = prompt.for_trl(tokenizing.prompt_template)
            for key, text in completions.items():
                example[key] = [{"role": "assistant", "content": text}] if chat else text
        split.examples.append(example)
    return split


@dataclass
class PreferenceData:
    train: PreferenceSplit
    val: PreferenceSplit | None
    format: str
    report: dict[str, Any]


def build_preference_data(
    options: SftDataOptions, tokenizer: Tokenizer, kind: str, text_rows: bool = False
) -> PreferenceData:
    """Read, split and tokenise preference rows (``kind``: pairs or unpaired; ``text_rows``: keep them as text
    for TRL too); PawError on an empty dataset, or when no row is usable."""
    records, val_records, source = read_and_split(options)
    tokenizing = Tokenizing(tokenizer, options.prompt_template, text_rows)
    train = tokenize_split(records, kind, tokenizing, options.max_length)
    if not train.examples:
        reasons = ", ".join(f"{k}: {v}" for k, v in train.summary()["dropped_by_reason"].items())
        raise PawError(f"{source}: no usable examples: all {train.rows_read} rows were dropped ({reasons})")
    if kind == UNPAIRED and len({e["label"] for e in train.examples}) < 2:
        only = "desirable" if train.examples[0]["label"] else "undesirable"
        raise PawError(f"{source}: every KTO row is {only}; KTO needs both labels")
    val = tokenize_split(val_records, kind, tokenizing, options.max_length) if val_records else None
    if val is not None and not val.examples:
        raise PawError(f"{options.val_file or source}: no usable validation examples")
    fmt = f"preference {kind}"
    summaries = train.summary(), val.summary() if val else None
    report = data_report(options, source, fmt, *summaries, prompt_template=options.prompt_template)
    return PreferenceData(train=train, val=val, format=fmt, report=report)


def to_preference_dataset(split: PreferenceSplit):
    """DPO: a ``datasets.Dataset`` of token ids, in the columns TRL's preference collator reads."""
    import datasets

    return datasets.Dataset.from_list(
        [{k: e[k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")} for e in split.examples]
    )


def to_text_dataset(split: PreferenceSplit):
    """The rows as TRL's text trainers take them (``prompt`` and ``chosen``/``rejected``, or ``completion`` and
    ``label``), prompts built as SFT builds them."""
    import datasets

    keys = ("prompt", *COMPLETIONS[split.kind], *(("label",) if split.kind == UNPAIRED else ()))
    return datasets.Dataset.from_list([{k: e[k] for k in keys} for e in split.examples])
