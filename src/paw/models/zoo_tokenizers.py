"""Tokenizers for the zoo, trained on the zoo's corpus: a byte-level BPE (Ġ space marker, GPT-2/Qwen/Llama-3 style,
HF ``tokenizers``) and a SentencePiece BPE with byte fallback (▁ space marker, Gemma/Llama-2 style, trained by the
``sentencepiece`` library itself and converted by transformers' own extractor). Special tokens and the chat template
are the family's (tiny_families.yaml), so chat formatting and stop tokens behave as on the real family.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Any

from paw.models.tiny import byte_level_bpe, families


def _specials(family: str) -> tuple[dict[str, Any], list[str]]:
    special = families()[family]["special"]
    ordered = [t for t in (special["pad"], special["eos"], special["bos"], *special["extra"]) if t]
    return special, list(dict.fromkeys(ordered))


def train_byte_bpe(lines: list[str], vocab_size: int, family: str):
    """A byte-level BPE tokenizer of ``vocab_size`` trained on ``lines``, with ``family``'s specials and template."""
    special, specials = _specials(family)
    return byte_level_bpe(lines, vocab_size, special, specials, families()[family]["chat_template"])


def train_sentencepiece(lines: list[str], vocab_size: int, family: str, dummy_prefix: bool):
    """A SentencePiece BPE model with byte fallback trained on ``lines`` (Gemma's style without a dummy prefix,
    Llama-2/Phi-3's with one): the transformers tokenizer with ``family``'s specials and template, and the
    SentencePiece model's bytes."""
    import sentencepiece
    from tokenizers.models import BPE
    from transformers import GemmaTokenizer, LlamaTokenizer
    from transformers.convert_slow_tokenizer import SentencePieceExtractor

    special, specials = _specials(family)
    fixed = [special["pad"], special["eos"], special["bos"] or "<s>", "<unk>"]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="bpe",
        byte_fallback=True,
        character_coverage=0.9995,
        split_digits=True,
        add_dummy_prefix=dummy_prefix,
        remove_extra_whitespaces=False,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece=fixed[0],
        eos_piece=fixed[1],
        bos_piece=fixed[2],
        unk_piece=fixed[3],
        user_defined_symbols=[t for t in specials if t not in fixed],
        num_threads=1,  # deterministic
        max_sentence_length=1 << 16,
        minloglevel=2,
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "spm.model"
        path.write_bytes(model.getvalue())
        parts = SentencePieceExtractor(str(path)).extract(BPE)
    cls = LlamaTokenizer if dummy_prefix else GemmaTokenizer
    extra = {"add_prefix_space": True} if dummy_prefix else {}
    tokenizer = cls(
        vocab=parts["vocab"],
        merges=parts["merges"],
        unk_token="<unk>",
        bos_token=fixed[2],
        eos_token=special["eos"],
        pad_token=special["pad"],
        **extra,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(special["extra"])})
    tokenizer.chat_template = families()[family]["chat_template"]
    tokenizer.padding_side = "right"
    return tokenizer, model.getvalue()
