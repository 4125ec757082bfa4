"""Read rows from JSONL/JSON/CSV/Parquet files or a hub dataset, keeping where each row came from.

A malformed row is a PawError naming ``file:line`` and the reason.
"""

from __future__ import annotations

import ast
import csv
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paw.errors import PawError

log = logging.getLogger("paw.data")
SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


@dataclass(frozen=True)
class Record:
    """One row and its location (``file:line`` for text files, ``file:row N`` otherwise)."""

    row: dict[str, Any]
    where: str


class DuplicateKey(ValueError):
    """A JSON object that names one key twice: ``json`` would keep the last value silently."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        raise DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return value


def loads_strict(text: str) -> Any:
    """``json.loads`` that refuses an object repeating a key (raises :class:`DuplicateKey`)."""
    return json.loads(text, object_pairs_hook=_unique_keys)


def _parse_jsonl_line(text: str, path: Path, lineno: int, allow_literals: bool) -> tuple[Any, bool]:
    """Parse one line; returns (value, whether it was a Python literal rather than JSON)."""
    try:
        return loads_strict(text), False
    except DuplicateKey as key:
        raise PawError(f"{path}:{lineno}: the key '{key}' appears twice in one object") from None
    except json.JSONDecodeError as err:
        if allow_literals and text.lstrip().startswith("{"):
            try:
                value = ast.literal_eval(text)  # Python dict literals (single quotes), never eval()
            except (ValueError, SyntaxError):
                pass
            else:
                return value, True
        raise PawError(
            f"{path}:{lineno}: malformed JSON line ({err.msg} at column {err.colno}); "
            "each line must be one JSON object"
        ) from None


def read_jsonl(path: Path, allow_literals: bool = True) -> list[Record]:
    """Read JSON Lines; lines that are Python dict literals are accepted with one warning."""
    records, literal_lines = [], 0
    with path.open(encoding="utf-8-sig") as handle:
        for lineno, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            value, was_literal = _parse_jsonl_line(text, path, lineno, allow_literals)
            if not isinstance(value, dict):
                raise PawError(
                    f"{path}:{lineno}: expected a JSON object per line, got {type(value).__name__}"
                )
            literal_lines += was_literal
            records.append(Record(value, f"{path}:{lineno}"))
    if literal_lines:
        log.warning(
            "%s: %d line(s) are Python dict literals, not JSON; read them with ast.literal_eval. "
            "Convert the file to JSON Lines to silence this.",
            path,
            literal_lines,
        )
    return records


def read_json(path: Path) -> list[Record]:
    text = path.read_text(encoding="utf-8-sig")
    try:
        data = loads_strict(text)
    except DuplicateKey as key:
        raise PawError(
            f"{path}: an object names the key '{key}' twice (JSON would keep only the last)"
        ) from None
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":  # a JSON Lines file named .json
            return read_jsonl(path)
        raise PawError(f"{path}:{err.lineno}: malformed JSON ({err.msg} at column {err.colno})") from None
    if isinstance(data, dict):
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise PawError(f"{path}: expected a JSON list of objects (or an object holding one list)")
        data = lists[0]
    if not isinstance(data, list):
        raise PawError(f"{path}: expected a JSON list of objects, got {type(data).__name__}")
    records = []
    for index, row in enumerate(data):
        if not isinstance(row, dict):
            raise PawError(f"{path}: row {index}: expected an object, got {type(row).__name__}")
        records.append(Record(row, f"{path}:row {index}"))
    return records


def read_csv(path: Path) -> list[Record]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        repeated = sorted({name for name in header if header.count(name) > 1})
        if repeated:
            raise PawError(f"{path}:1: the header names column(s) {repeated} more than once")
        records = []
        for row in reader:
            if None in row:
                raise PawError(f"{path}:{reader.line_num}: more fields than the header has")
            if None in row.values():
                given = sum(value is not None for value in row.values())
                raise PawError(f"{path}:{reader.line_num}: {given} fields, the header has {len(header)}")
            records.append(Record(dict(row), f"{path}:{reader.line_num}"))
    return records


def read_parquet(path: Path) -> list[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # pyarrow raises several types for a corrupt file
        raise PawError(f"{path}: not a readable Parquet file ({err})") from None
    return [Record(row, f"{path}:row {i}") for i, row in enumerate(table.to_pylist())]


READERS = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv, ".parquet": read_parquet}


def read_rows(path: str | Path) -> list[Record]:
    """Read every row of a local data file (or of a built-in ``paw-synth/`` dataset)."""
    from paw.data.builtin import resolve_data_file

    path = resolve_data_file(path)
    if not path.is_file():
        raise PawError(f"{path}: data file not found")
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise PawError(
            f"{path}: unsupported data file type '{path.suffix}'; use one of {', '.join(SUFFIXES)}"
        )
    try:
        return reader(path)
    except UnicodeDecodeError as err:
        raise PawError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None


def read_hub(dataset_id: str, split: str, name: str | None = None, fix: str = "") -> list[Record]:
    """Rows of a hub dataset split (needs the hub or a local datasets cache); ``fix`` is the hint on failure."""
    from paw.utils.hf import quiet_hf

    quiet_hf()
    import datasets

    try:
        data = datasets.load_dataset(dataset_id, name, split=split)
    except Exception as err:  # network, gated, missing split, unknown dataset: all user-facing
        reason = str(err).splitlines()[0] if str(err) else ""
        raise PawError(
            f"hub dataset '{dataset_id}'{f' ({name})' if name else ''} split '{split}' could not be loaded: "
            f"{type(err).__name__}: {reason}. Offline? {fix or 'Export it to a local .jsonl and point paw at it'}"
        ) from None
    return [Record(dict(row), f"{dataset_id}[{split}]:row {i}") for i, row in enumerate(data)]


def renamed(records: list[Record], columns: Iterable[tuple[str, str]]) -> list[Record]:
    """Rows with fields renamed (``data.columns``, source field -> paw field): a dataset's own names mapped to the
    format's."""
    mapping = dict(columns)
    if not mapping:
        return records
    return [Record({mapping.get(k, k): v for k, v in r.row.items()}, r.where) for r in records]
