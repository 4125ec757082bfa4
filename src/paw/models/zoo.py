"""The zoo: small causal LMs pretrained here (``paw-zoo/<name>``), for the cross-family transfer study.

``build_zoo`` makes, under ``<cache>/zoo-v<version>/`` (the micro-zoo the tests build: ``zoo-micro-v<version>/``):

    corpus/            train.txt, heldout.txt, manifest.json      (paw/data/corpus.py)
    tokenizers/<name>/ a trained tokenizer per zoo.yaml entry      (paw/models/zoo_tokenizers.py)
    models/<name>/     weights, tokenizer, zoo_model.json (recipe, held-out and unigram perplexity, seconds)
    .work/<name>/      the Trainer's checkpoints while a model trains (an interrupted build resumes from them)
    zoo.json           every model's record and the build's wall time

Each part is built into a staging dir and renamed into place, so a part that exists is complete; a rerun skips
what exists. Every model has its own seed (a hash of its name), so no two share initial weights or data order.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from paw.errors import PawError
from paw.utils.cache import build_atomically, cache_dir, named_seed
from paw.utils.suggest import did_you_mean

PREFIX = "paw-zoo/"


@cache
def zoo_spec() -> dict[str, Any]:
    return yaml.safe_load(Path(__file__).with_name("zoo.yaml").read_text(encoding="utf-8"))


def zoo_root(micro: bool = False) -> Path:
    return cache_dir() / f"zoo{'-micro' if micro else ''}-v{zoo_spec()['version']}"


def names() -> list[str]:
    return list(zoo_spec()["models"])


def known(name: str) -> str:
    """The zoo name of ``paw-zoo/<name>`` (or ``<name>``); an unknown one is a PawError with a suggestion."""
    short = name[len(PREFIX) :] if name.startswith(PREFIX) else name
    if short not in zoo_spec()["models"]:
        raise PawError(
            f"unknown zoo model '{name}'{did_you_mean(short, names())}; the zoo: "
            + ", ".join(PREFIX + n for n in names())
        )
    return short


def zoo_model_dir(name: str) -> Path:
    """The dir of ``paw-zoo/<name>``, which ``paw zoo build`` must have built (about 45 minutes on 2 CPU cores)."""
    short = known(name)
    path = zoo_root() / "models" / short
    if not (path / "zoo_model.json").is_file():
        raise PawError(
            f"{PREFIX}{short} is not built yet: run `paw zoo build` (about 45 minutes on 2 CPU cores)"
        )
    return path


def _micro_vocab(size: int) -> int:
    """The micro-zoo's vocabulary for a tokenizer of ``size`` tokens."""
    return max(384, int(size * zoo_spec()["micro"]["vocab_scale"]))


def _micro_config(config: dict[str, Any]) -> dict[str, Any]:
    """The micro-zoo's shape for a model of ``config``: the micro widths replace the model's own (head_dim only where
    the model sets one), half the layers (at least 2), no more KV heads than heads."""
    micro = zoo_spec()["micro"]
    small = {**config, **{k: v for k, v in micro["config"].items() if k in config or k == "hidden_size"}}
    small["num_hidden_layers"] = max(2, config["num_hidden_layers"] // 2)
    small["num_key_value_heads"] = min(config["num_key_value_heads"], small["num_attention_heads"])
    if "sliding_window" in config:
        small["sliding_window"] = micro["seq_len"] // 2
    return small


def _recipe_value(key: str, micro: bool) -> Any:
    spec = zoo_spec()
    return spec["micro"][key] if micro else spec[key]


def build_corpus_dir(micro: bool = False) -> Path:
    from paw.data.corpus import PACKAGES, build_corpus

    def build(out: Path) -> None:
        if micro:
            files, packages = zoo_spec()["micro"]["files_per_source"], tuple(zoo_spec()["micro"]["packages"])
        else:
            files, packages = None, PACKAGES
        manifest = build_corpus(out, files, packages)
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")

    return build_atomically(zoo_root(micro) / "corpus", build, marker="manifest.json")


def build_tokenizer(name: str, micro: bool = False) -> Path:
    from paw.data.corpus import read_lines
    from paw.models.zoo_tokenizers import train_byte_bpe, train_sentencepiece

    spec = zoo_spec()["tokenizers"][name]
    corpus = build_corpus_dir(micro)

    def build(out: Path) -> None:
        lines = read_lines(corpus / "train.txt")
        vocab = _micro_vocab(spec["vocab_size"]) if micro else spec["vocab_size"]
        if spec["kind"] == "byte_bpe":
            tokenizer = train_byte_bpe(lines, vocab, spec["family"])
        else:
            tokenizer, model = train_sentencepiece(lines, vocab, spec["family"], spec["dummy_prefix"])
            out.mkdir(parents=True)
            (out / "sentencepiece.model").write_bytes(model)
        tokenizer.save_pretrained(out)

    return build_atomically(zoo_root(micro) / "tokenizers" / name, build, marker="tokenizer_config.json")


def build_model(name: str, micro: bool = False) -> Path:
    """Pretrain ``name`` (resuming a build that was stopped) and record its perplexities; return its dir."""
    target = zoo_root(micro) / "models" / name
    if (target / "zoo_model.json").is_file():
        return target
    work = zoo_root(micro) / ".work" / name
    path = build_atomically(target, lambda out: _train(name, micro, out, work), marker="zoo_model.json")
    shutil.rmtree(work, ignore_errors=True)
    return path


def _train(name: str, micro: bool, out: Path, work: Path) -> None:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    from paw.data.corpus import read_lines
    from paw.models.pretrain import Recipe, heldout_perplexity, pretrain, stream, unigram_perplexity, windows
    from paw.models.tiny import families

    start = time.perf_counter()
    spec = zoo_spec()["models"][name]
    family = families()[spec["family"]]
    tokenizer = AutoTokenizer.from_pretrained(build_tokenizer(spec["tokenizer"], micro))
    corpus = build_corpus_dir(micro)
    seq_len = _recipe_value("seq_len", micro)
    bos = tokenizer.bos_token_id if family["special"]["bos"] else None
    train_tokens = stream(tokenizer, read_lines(corpus / "train.txt"))
    heldout_rows = windows(stream(tokenizer, read_lines(corpus / "heldout.txt")), seq_len, bos)
    seed = named_seed(PREFIX + name, 0)
    recipe = Recipe(
        steps=zoo_spec()["micro"]["steps"] if micro else spec["steps"],
        lr=spec["lr"],
        batch=_recipe_value("batch", micro),
        seq_len=seq_len,
        warmup=_recipe_value("warmup", micro),
        seed=seed,
        save_every=10 if micro else 200,
    )
    token_id = tokenizer.convert_tokens_to_ids
    shape = _micro_config(spec["config"]) if micro else spec["config"]
    settings = {
        k: v for k, v in family["config"].items() if k not in spec["config"] and k != "initializer_range"
    }
    config = AutoConfig.for_model(
        family["model_type"],
        vocab_size=len(tokenizer),
        bos_token_id=bos,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **{**settings, **shape, "max_position_embeddings": 512},
    )
    if family["model_type"] == "phi3":
        config.original_max_position_embeddings = 512
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    training = pretrain(model, windows(train_tokens, seq_len, bos), recipe, work)
    trained = time.perf_counter()
    heldout = heldout_perplexity(model, heldout_rows)
    record = {
        "name": PREFIX + name,
        "family": spec["family"],
        "model_type": family["model_type"],
        "tokenizer": spec["tokenizer"],
        "vocab_size": len(tokenizer),
        "parameters": sum(p.numel() for p in model.parameters()),
        "config": shape,
        "recipe": recipe.__dict__,
        "train_tokens": recipe.steps * recipe.batch * recipe.seq_len,
        "corpus_tokens": len(train_tokens),
        **training,
        "heldout": heldout,
        "unigram_perplexity": unigram_perplexity(train_tokens, heldout_rows, len(tokenizer)),
        "train_seconds": trained - start,
        "seconds": time.perf_counter() - start,
        "torch_threads": torch.get_num_threads(),
    }
    stops = [tokenizer.eos_token_id] + [
        token_id(t) for t in family["special"]["extra"] if t in ("<|im_end|>", "<end_of_turn>", "<|end|>")
    ]
    model.generation_config = GenerationConfig(
        bos_token_id=bos, eos_token_id=stops, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "zoo_model.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


def build_zoo(
    only: list[str] | None = None, micro: bool = False, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Build every zoo model (or ``only`` these) and write ``zoo.json``; parts already built are reused."""
    only = [known(n) for n in only] if only else None
    start = time.perf_counter()
    root = zoo_root(micro)
    log(f"corpus → {build_corpus_dir(micro)}")
    records = {}
    for name in only or names():
        began = time.perf_counter()
        path = build_model(name, micro)
        records[name] = json.loads((path / "zoo_model.json").read_text(encoding="utf-8"))
        ppl = records[name]["heldout"]["perplexity"]
        log(
            f"{PREFIX}{name}: held-out perplexity {ppl:.1f} (unigram {records[name]['unigram_perplexity']:.1f}), "
            f"{time.perf_counter() - began:.0f} s this run → {path}"
        )
    summary = {
        "root": str(root),
        "micro": micro,
        "corpus": json.loads((root / "corpus" / "manifest.json").read_text(encoding="utf-8")),
        "models": records,
        "this_run_seconds": time.perf_counter() - start,
    }
    if not only:
        from paw.utils.io import atomic_write_json

        atomic_write_json(root / "zoo.json", summary)
    return summary
