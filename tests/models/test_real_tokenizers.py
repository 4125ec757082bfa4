"""Real tokenizers from llama.cpp's vocabulary files: every reference id sequence reproduced, BOS as the real ones,
and a clear error when they have not been fetched."""

import json

import pytest

from paw.errors import PawError
from paw.models import real_tokenizers as rt


@pytest.mark.parametrize("name", rt.tokenizer_names())
def test_converted_tokenizer_gives_llama_cpps_reference_ids(real_tokenizers, name):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(real_tokenizers[name])
    cases = rt.reference_cases(name)
    assert len(cases) >= 40  # whitespace runs, CJK, emoji, code, numbers: ~47 strings per vocabulary
    wrong = [(text, ids) for text, ids in cases if tokenizer.encode(text, add_special_tokens=False) != ids]
    assert wrong == []


@pytest.mark.parametrize(
    ("name", "space_marker", "bos"),
    [
        ("qwen2", "Ġ", None),
        ("llama3", "Ġ", "<|begin_of_text|>"),
        ("phi3", "▁", "<s>"),
        ("llama-spm", "▁", "<s>"),
    ],
)
def test_space_marker_and_bos_are_the_real_tokenizers(real_tokenizers, name, space_marker, bos):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(real_tokenizers[name])
    assert tokenizer.tokenize("Hello world")[-1] == f"{space_marker}world"
    plain = tokenizer.encode("Hello world", add_special_tokens=False)
    ids = tokenizer("Hello world").input_ids
    assert ids == (plain if bos is None else [tokenizer.convert_tokens_to_ids(bos), *plain])


def test_every_conversion_records_its_source_and_checksums(real_tokenizers):
    source = rt.table()["source"]
    for name, path in real_tokenizers.items():
        record = json.loads((path / rt.RECORD).read_text())
        assert record["gguf"] == rt.table()["tokenizers"][name]["gguf"]
        assert source["version"] in record["source"]
        assert len(record["gguf_sha256"]) == len(record["tokenizer_json_sha256"]) == 64


def test_missing_tokenizer_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("PAW_CACHE_DIR", str(tmp_path))
    with pytest.raises(PawError, match="run `paw fetch-tokenizers`"):
        rt.tokenizer_dir("qwen2")
    with pytest.raises(PawError, match="unknown real tokenizer 'qwen'.*did you mean 'qwen2'"):
        rt.tokenizer_dir("qwen")


def test_a_wrong_archive_is_refused_by_checksum(tmp_path, monkeypatch):
    monkeypatch.setenv("PAW_CACHE_DIR", str(tmp_path))
    fake = tmp_path / "llama_cpp_python-0.3.36.tar.gz"
    fake.write_bytes(b"not the archive")
    with pytest.raises(PawError, match="sha256 .* is not the pinned"):
        rt.fetch_tokenizers(sdist=fake)
    assert not (tmp_path / "tokenizers" / "qwen2").exists()


def test_a_missing_sdist_is_an_error_even_when_nothing_needs_fetching(real_tokenizers, tmp_path):
    with pytest.raises(PawError, match=r"--sdist .*nope.tar.gz: no such file"):
        rt.fetch_tokenizers(sdist=tmp_path / "nope.tar.gz")
