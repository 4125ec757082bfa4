"""The zoo's pretraining corpus: English prose that exists offline on every machine after ``make setup`` — the
docstrings of the Python standard library and of the pinned packages paw installs.

Each docstring is split into paragraphs; a paragraph is kept when it is mostly words (letters and spaces make at
least ``PROSE_SHARE`` of it: code, tables and signatures fail), at least ``MIN_CHARS`` long, and not seen before
(deduplicated by its whitespace-normalised text). Files are read in sorted order, so the corpus is a function of
the installed versions, which the manifest records with the text's sha256. A paragraph goes to the held-out split
by a hash of its text (about 1 in 20), never by position. Benchmark data is never read: the sources are Python
files of the packages below, not datasets, and lm-eval's task files are not among them.
"""

from __future__ import annotations

import ast
import hashlib
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MIN_CHARS = 40
PROSE_SHARE = 0.85
HELDOUT_IN = 20  # one paragraph in this many (by hash) is held out
# The pinned packages whose docstrings join the standard library's (requirements/constraints.txt pins them).
PACKAGES = (
    "transformers",
    "torch",
    "numpy",
    "peft",
    "accelerate",
    "datasets",
    "pydantic",
    "trl",
    "rich",
    "typer",
)
_SKIP_PARTS = {"test", "tests", "testing", "idlelib", "site-packages", "__pycache__"}


@dataclass(frozen=True)
class Source:
    name: str
    version: str
    root: Path


def sources(packages: tuple[str, ...] = PACKAGES) -> list[Source]:
    """The standard library and each installed package of ``packages``, with its version."""
    from importlib.metadata import PackageNotFoundError, version

    found = [Source("python-stdlib", sys.version.split()[0], Path(sysconfig.get_paths()["stdlib"]))]
    site = Path(sysconfig.get_paths()["purelib"])
    for package in packages:
        if (site / package).is_dir():
            try:
                found.append(Source(package, version(package), site / package))
            except PackageNotFoundError:
                continue
    return found


def _files(source: Source, limit: int | None) -> list[Path]:
    files = sorted(
        path
        for path in source.root.rglob("*.py")
        if not _SKIP_PARTS & set(path.relative_to(source.root).parts[:-1]) and "test" not in path.name
    )
    return files[:limit] if limit is not None else files


def _docstrings(path: Path) -> Iterator[str]:
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
        return
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            text = ast.get_docstring(node)
            if text:
                yield text


def is_prose(paragraph: str) -> bool:
    if len(paragraph) < MIN_CHARS:
        return False
    return sum(c.isalpha() or c == " " for c in paragraph) / len(paragraph) >= PROSE_SHARE


def paragraphs(files_per_source: int | None = None, packages: tuple[str, ...] = PACKAGES) -> Iterator[str]:
    """Every kept paragraph, deduplicated, in a fixed order (sources as listed, files sorted)."""
    seen: set[bytes] = set()
    for source in sources(packages):
        for path in _files(source, files_per_source):
            for doc in _docstrings(path):
                for block in re.split(r"\n\s*\n", doc):
                    paragraph = " ".join(block.split())
                    key = hashlib.sha1(paragraph.encode()).digest()
                    if key not in seen and is_prose(paragraph):
                        seen.add(key)
                        yield paragraph


def held_out(paragraph: str) -> bool:
    return hashlib.sha256(paragraph.encode()).digest()[0] % HELDOUT_IN == 0


def build_corpus(
    out_dir: Path, files_per_source: int | None = None, packages: tuple[str, ...] = PACKAGES
) -> dict:
    """Write ``train.txt`` and ``heldout.txt`` (one paragraph a line) into ``out_dir``; return the manifest."""
    train, heldout = [], []
    for paragraph in paragraphs(files_per_source, packages):
        (heldout if held_out(paragraph) else train).append(paragraph)
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest = {
        "sources": {s.name: s.version for s in sources(packages)},
        "files_per_source": files_per_source,
    }
    for name, rows in (("train", train), ("heldout", heldout)):
        text = "".join(row + "\n" for row in rows)
        (out_dir / f"{name}.txt").write_text(text, encoding="utf-8")
        manifest[name] = {
            "paragraphs": len(rows),
            "chars": len(text),
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
        }
    return manifest


def read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()
