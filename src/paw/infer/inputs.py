"""Inputs of ``paw infer``: one text, or a file — ``.txt`` (one prompt per line) or ``.jsonl`` with per line one of
``{"prompt": ...}`` / ``{"text": ...}`` (used as given), ``{"instruction": ..., "input": ...}`` (an Alpaca row) or
``{"messages": [...]}`` (a chat). A bad line is reported as ``file:line: reason``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paw.data.readers import DuplicateKey, loads_strict
from paw.errors import PawError


@dataclass(frozen=True)
class InferInput:
    text: str | None = None  # a plain prompt
    instruction: str | None = None
    input: str = ""
    messages: tuple[dict[str, str], ...] | None = None

    def shown(self) -> Any:
        """What results.json records as the input."""
        if self.messages is not None:
            return list(self.messages)
        if self.instruction is not None:
            return {"instruction": self.instruction, "input": self.input}
        return self.text


def _from_row(row: Any, where: str) -> InferInput:
    if not isinstance(row, dict):
        raise PawError(f"{where}: expected a JSON object, got {type(row).__name__}")
    kinds = [key for key in ("prompt", "text", "instruction", "messages") if key in row]
    if len(kinds) > 1:
        raise PawError(f"{where}: give one input per line, not {' and '.join(kinds)}")
    for key in ("prompt", "text"):
        if isinstance(row.get(key), str):
            return InferInput(text=row[key])
    if isinstance(row.get("instruction"), str):
        extra = row.get("input") or ""
        if not isinstance(extra, str):
            raise PawError(f"{where}: field 'input' must be a string")
        return InferInput(instruction=row["instruction"], input=extra)
    messages = row.get("messages")
    if isinstance(messages, list) and messages:
        if not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages):
            raise PawError(f"{where}: every message needs 'role' and 'content'")
        return InferInput(messages=tuple({"role": m["role"], "content": str(m["content"])} for m in messages))
    raise PawError(
        f"{where}: no input found; give 'prompt' (or 'text'), 'instruction' (+ 'input') or 'messages' "
        f"(keys here: {sorted(row)})"
    )


def read_inputs(path: str | Path) -> list[InferInput]:
    path = Path(path)
    if not path.is_file():
        raise PawError(f"--input-file {path}: file not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise PawError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    inputs = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if path.suffix.lower() == ".txt":
            inputs.append(InferInput(text=line))
            continue
        if path.suffix.lower() != ".jsonl":
            raise PawError(f"--input-file {path}: use a .txt (one prompt per line) or .jsonl file")
        try:
            row = loads_strict(line)
        except DuplicateKey as key:
            raise PawError(f"{path}:{number}: the key '{key}' appears twice in one object") from None
        except json.JSONDecodeError as err:
            raise PawError(f"{path}:{number}: invalid JSON ({err.msg} at column {err.colno})") from None
        inputs.append(_from_row(row, f"{path}:{number}"))
    if not inputs:
        raise PawError(f"--input-file {path}: no inputs (the file is empty)")
    return inputs
