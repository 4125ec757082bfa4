"""Built-in tiny models ``paw-tiny/<family>``: real architectures with random weights, built on first use.

Each is a Qwen2/Llama/Gemma2/Phi3-shaped model (hidden 64, 2 layers; a few hundred thousand parameters) with a
byte-level BPE tokenizer trained on the spot on paw's synthetic-task text, and a chat template in the style of
the real family. Built once into the cache (``$PAW_CACHE_DIR`` or ``~/.cache/paw``) and deterministic for a seed,
so tests, the demo and offline smoke runs need no network.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from paw.errors import PawError
from paw.utils.cache import build_atomically, cache_dir, named_seed
from paw.utils.suggest import did_you_mean

PREFIX = "paw-tiny/"
# Bump when the recipe below changes, so caches built by an older paw are not reused.
TINY_VERSION = 4
VOCAB_SIZE = 1024
ALPACA_HEADER = "Below is an instruction that describes a task. Write a response that appropriately completes the request."


@cache
def families() -> dict[str, dict[str, Any]]:
    return yaml.safe_load(Path(__file__).with_name("tiny_families.yaml").read_text(encoding="utf-8"))


def family_of(name: str) -> tuple[str, str | None]:
    """``paw-tiny/qwen2`` -> ``("qwen2", None)``, ``paw-tiny/qwen2-upgrade`` -> ``("qwen2", "upgrade")``; an unknown
    family or variant is a PawError with a suggestion."""
    from paw.models.tiny_variants import VARIANTS

    family, _, variant = name[len(PREFIX) :].partition("-")
    known = [*families(), *(f"{f}-{v}" for f in families() for v in VARIANTS)]
    if family not in families() or (variant and variant not in VARIANTS):
        raise PawError(
            f"unknown tiny model '{name}'{did_you_mean(name[len(PREFIX) :], known)}; "
            f"built-in: {', '.join(PREFIX + f for f in families())} and their variants "
            f"-{', -'.join(VARIANTS)} (e.g. {PREFIX}qwen2-upgrade)"
        )
    return family, variant or None


def tiny_model_dir(name: str, seed: int = 0) -> Path:
    """Return the cached dir of a tiny model (or variant), building it first if needed."""
    family, variant = family_of(name)
    root = cache_dir() / "tiny"
    base = build_atomically(
        root / f"{family}-seed{seed}-v{TINY_VERSION}", lambda out: build_tiny_model(family, out, seed)
    )
    if variant is None:
        return base
    from paw.models.tiny_variants import VARIANTS

    return build_atomically(
        root / f"{family}-{variant}-seed{seed}-v{TINY_VERSION}", lambda out: VARIANTS[variant](base, out)
    )


def byte_level_bpe(
    lines: list[str],
    vocab_size: int,
    special: dict[str, Any],
    specials: list[str],
    chat_template: str,
    **options,
):
    """A byte-level BPE tokenizer (Ġ space marker) of ``vocab_size`` trained on ``lines``: ``specials`` first, in that
    order, then ``special``'s bos/eos/pad and extra tokens named as such; ``options`` go to the transformers
    tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(lines, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=special["bos"],
        eos_token=special["eos"],
        pad_token=special["pad"],
        additional_special_tokens=list(special["extra"]),
        chat_template=chat_template,
        padding_side="right",
        **options,
    )


def _train_tokenizer(spec: dict[str, Any]):
    from paw.data.synthetic import corpus_lines

    special = spec["special"]
    specials = [t for t in (special["bos"], special["eos"], special["pad"], *special["extra"]) if t]
    corpus = [ALPACA_HEADER, "### Instruction:", "### Input:", "### Response:", *corpus_lines()]
    return byte_level_bpe(
        corpus,
        VOCAB_SIZE,
        special,
        list(dict.fromkeys(specials)),
        spec["chat_template"],
        model_max_length=spec["config"]["max_position_embeddings"],
    )


def build_tiny_model(family: str, out_dir: Path, seed: int = 0) -> Path:
    """Build ``paw-tiny/<family>`` into ``out_dir`` (safetensors weights, tokenizer, generation config)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    from paw.utils.hf import quiet_hf

    quiet_hf()
    spec = families()[family]
    tokenizer = _train_tokenizer(spec)
    token_id = tokenizer.convert_tokens_to_ids
    special = spec["special"]
    config = AutoConfig.for_model(
        spec["model_type"],
        vocab_size=len(tokenizer),
        bos_token_id=token_id(special["bos"]) if special["bos"] else None,
        eos_token_id=token_id(special["eos"]),
        pad_token_id=token_id(special["pad"]),
        **spec["config"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(named_seed(PREFIX + family, seed))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    stops = [token_id(special["eos"])]
    stops += [token_id(t) for t in special["extra"] if t in ("<|im_end|>", "<end_of_turn>", "<|end|>")]
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=stops, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
