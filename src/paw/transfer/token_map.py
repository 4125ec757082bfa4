"""Which tokens two vocabularies share, compared as the bytes they stand for.

A byte-level BPE token (GPT-2, Qwen, Llama-3) is a string over GPT-2's byte alphabet: ``Ġthe`` is the bytes
`` the``. A SentencePiece token (Gemma, Llama-2, Phi-3) marks a space with ``▁`` and may be a byte-fallback piece
``<0xNN>`` (used only for a byte no other piece covers): ``▁the`` is also `` the``. ``decode([id])`` would drop the leading space of a SentencePiece piece (and
so pair the word-initial ``▁the`` with a word-internal ``the``); comparing bytes pairs like with like. A byte string
that several ids of one vocabulary stand for (``▁`` and ``<0x20>``) is ambiguous and left out; special tokens
are never matched.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass(frozen=True)
class SharedTokens:
    source_ids: list[int]
    target_ids: list[int]
    ambiguous: int  # byte strings left out because several ids of one vocabulary stand for them


def _is_byte_level(tokenizer: Tokenizer) -> bool:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    return '"ByteLevel"' in json.dumps(json.loads(backend.to_str()).get("decoder"))


def token_bytes(tokenizer: Tokenizer) -> dict[bytes, list[int]]:
    """Every non-special token's bytes, and the ids that stand for them."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    special = set(tokenizer.all_special_ids)
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    byte_level = _is_byte_level(tokenizer)
    to_byte = {char: byte for byte, char in bytes_to_unicode().items()}
    out: dict[bytes, list[int]] = {}
    fallback: dict[bytes, int] = {}
    for token_id, piece in enumerate(pieces):
        if token_id in special or piece is None:
            continue
        if byte_level:
            if any(char not in to_byte for char in piece):  # an added token outside the byte alphabet
                continue
            out.setdefault(bytes(to_byte[char] for char in piece), []).append(token_id)
        elif match := _BYTE_PIECE.fullmatch(piece):
            fallback[bytes([int(match.group(1), 16)])] = token_id
        else:
            out.setdefault(piece.replace("▁", " ").encode(), []).append(token_id)
    for key, token_id in fallback.items():  # a byte piece stands for its byte only where no piece does
        out.setdefault(key, [token_id])
    return out


def shared_tokens(source: Tokenizer, target: Tokenizer) -> SharedTokens:
    """Ids of the tokens both vocabularies have, paired by the bytes they stand for (one id each side)."""
    s_table, t_table = token_bytes(source), token_bytes(target)
    common = sorted(set(s_table) & set(t_table))
    unique = [key for key in common if len(s_table[key]) == 1 and len(t_table[key]) == 1]
    return SharedTokens(
        [s_table[key][0] for key in unique], [t_table[key][0] for key in unique], len(common) - len(unique)
    )
