"""Token maps across tokenizers: a SentencePiece piece and a byte-level BPE token pair up when they stand for the
same bytes (the ▁ and Ġ space markers alike, byte-fallback pieces as their byte), never by decoded text."""

import pytest


@pytest.fixture(scope="module")
def tokenizers():
    from paw.data.corpus import paragraphs
    from paw.models.zoo_tokenizers import train_byte_bpe, train_sentencepiece

    lines = list(paragraphs(files_per_source=30, packages=()))
    return {
        "bbpe": train_byte_bpe(lines, 600, "qwen2"),
        "gemma": train_sentencepiece(lines, 600, "gemma2", dummy_prefix=False)[0],
        "llama2": train_sentencepiece(lines, 600, "phi3", dummy_prefix=True)[0],
    }


def test_space_markers_and_byte_pieces_pair_like_with_like(tokenizers):
    from paw.transfer.token_map import shared_tokens

    bbpe = tokenizers["bbpe"]
    for name in ("gemma", "llama2"):
        spm = tokenizers[name]
        shared = shared_tokens(bbpe, spm)
        pairs = dict(
            zip(
                bbpe.convert_ids_to_tokens(shared.source_ids),
                spm.convert_ids_to_tokens(shared.target_ids),
                strict=True,
            )
        )
        assert pairs["Ġthe"] == "▁the"
        # word-initial tokens pair with word-initial tokens only
        assert all(b.startswith("Ġ") == s.startswith("▁") for b, s in pairs.items())
        assert pairs["Ã"] == "<0xC3>"  # a byte piece stands for its byte where no piece covers it
        assert len(pairs) == len(set(pairs.values()))  # one to one
        assert all(t not in bbpe.all_special_tokens for t in pairs) and shared.ambiguous == 0
        # decode([id]) drops a SentencePiece piece's leading space (Llama-2 style): it would pair ▁the with "the"
        if name == "llama2":
            assert spm.decode(spm.convert_tokens_to_ids(["▁the"])) == "the"
