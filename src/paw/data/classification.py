"""Sequence-classification data: one text or a sentence pair per row and a label, tokenised for an encoder or a
decoder with a classification head, plus the ``data_validation.json`` report.

Text fields: ``data.text_fields`` when given, else the first of ``sentence1``+``sentence2``, ``question1``+
``question2``, ``premise``+``hypothesis``, ``question``+``sentence``, ``text``, ``sentence`` that the rows have (the
GLUE names). Labels (``data.label_field``): integers 0..K-1 are used as they are; strings are sorted and numbered.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from paw.data.readers import Record
from paw.data.sft import SftDataOptions, data_report, read_and_split
from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

TEXT_FIELD_CANDIDATES = (
    ("sentence1", "sentence2"),
    ("question1", "question2"),
    ("premise", "hypothesis"),
    ("question", "sentence"),
    ("text",),
    ("sentence",),
)


@dataclass
class ClassificationSplit:
    examples: list[dict[str, Any]] = field(default_factory=list)
    rows_read: int = 0
    truncated: int = 0

    def summary(self, names: list[str]) -> dict[str, Any]:
        counts = Counter(e["labels"] for e in self.examples)
        return {
            "rows_read": self.rows_read,
            "examples": len(self.examples),
            "truncated": self.truncated,
            "labels": {names[k]: counts[k] for k in sorted(counts)},
        }


@dataclass
class ClassificationData:
    train: ClassificationSplit
    val: ClassificationSplit | None
    labels: list[str]
    text_fields: tuple[str, ...]
    report: dict[str, Any]
    format: str = "classification"


def detect_text_fields(row: dict[str, Any], where: str) -> tuple[str, ...]:
    for fields in TEXT_FIELD_CANDIDATES:
        if all(isinstance(row.get(f), str) for f in fields):
            return fields
    raise PawError(
        f"{where}: no text to classify; expected 'text', 'sentence' or a pair like sentence1/sentence2 "
        f"(keys here: {sorted(row)}); or set data.text_fields"
    )


def label_names(records: list[Record], label_field: str) -> list[str]:
    """Label names in id order: '0'..'K-1' for integer labels, the sorted strings otherwise."""
    values = []
    for record in records:
        if label_field not in record.row:
            raise PawError(f"{record.where}: missing field '{label_field}' (data.label_field)")
        value = record.row[label_field]
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise PawError(f"{record.where}: label must be an integer or a string, got {value!r}")
        values.append(value)
    if all(isinstance(v, int) for v in values):
        bad = [v for v in values if v < 0]
        if bad:
            raise PawError(f"data.label_field '{label_field}': labels must be 0..K-1, found {bad[0]}")
        return [str(i) for i in range(max(values) + 1)]
    if any(isinstance(v, int) for v in values):
        raise PawError(f"data.label_field '{label_field}': labels mix integers and strings")
    return sorted(set(values))


def _tokenize(
    records: list[Record],
    fields: tuple[str, ...],
    label_field: str,
    names: list[str],
    tokenizer: Tokenizer,
    max_length: int,
) -> ClassificationSplit:
    split = ClassificationSplit(rows_read=len(records))
    ids = {name: i for i, name in enumerate(names)}
    for record in records:
        texts = []
        for name in fields:
            if name not in record.row:
                raise PawError(f"{record.where}: missing field '{name}' (data.text_fields)")
            value = record.row[name]
            if not isinstance(value, str):
                raise PawError(f"{record.where}: field '{name}' must be a string")
            texts.append(value)
        label = str(record.row.get(label_field))
        if label not in ids:
            raise PawError(f"{record.where}: label {label!r} is not among the training labels {names}")
        encoded = tokenizer(*texts, truncation=True, max_length=max_length)
        full = len(tokenizer(*texts)["input_ids"])
        split.truncated += full > max_length
        split.examples.append({**{k: list(v) for k, v in encoded.items()}, "labels": ids[label]})
    return split


def build_classification_data(
    options: SftDataOptions, tokenizer: Tokenizer, text_fields: list[str] | None, label_field: str
) -> ClassificationData:
    records, val_records, source = read_and_split(options)
    fields = tuple(text_fields) if text_fields else detect_text_fields(records[0].row, records[0].where)
    names = label_names(records, label_field)
    if len(names) < 2:
        raise PawError(f"{source}: classification needs at least 2 labels; found {names}")
    train = _tokenize(records, fields, label_field, names, tokenizer, options.max_length)
    val = (
        _tokenize(val_records, fields, label_field, names, tokenizer, options.max_length)
        if val_records
        else None
    )
    summaries = train.summary(names), val.summary(names) if val else None
    report = data_report(
        options, source, "classification", *summaries, text_fields=list(fields), labels=names
    )
    return ClassificationData(train, val, names, fields, report)


def to_classification_dataset(split: ClassificationSplit):
    import datasets

    keys = split.examples[0].keys() if split.examples else ("input_ids", "labels")
    return datasets.Dataset.from_dict({k: [e[k] for e in split.examples] for k in keys})
