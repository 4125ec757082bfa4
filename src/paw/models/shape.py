"""Stand-ins of published models, ``paw-shape/<name>[@<layers>]``: exact shapes, real tokenizers, random weights.

Tiny models hide the costs that decide real speed (on Qwen2.5-0.5B's shape the vocabulary projection is about a
third of a forward pass); these reproduce them offline. Each is the published ``config.json`` of the checkpoint
(``shapes.yaml``), weights drawn from N(0, initializer_range²) as ``from_config`` does, stored in bf16 like the
real files, with the real tokenizer (``real_tokenizers.py``), the family's chat template and its stop tokens.
``@<layers>`` keeps the first layers only (``paw-shape/qwen2.5-7b@4``), for shapes that do not fit a machine or a
test. Each model draws from its own seed (a hash of its name), so no two stand-ins share weights.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml

from paw.errors import PawError
from paw.utils.cache import build_atomically, cache_dir, named_seed
from paw.utils.io import atomic_write_json
from paw.utils.suggest import did_you_mean

PREFIX = "paw-shape/"
# Bump when the build below changes, so caches built by an older paw are not reused.
SHAPE_VERSION = 1
RECORD = "paw_shape.json"


@cache
def _table() -> dict[str, Any]:
    return yaml.safe_load(Path(__file__).with_name("shapes.yaml").read_text(encoding="utf-8"))


def shapes() -> dict[str, dict[str, Any]]:
    """Published model name -> its spec (config, tokenizer, special tokens, chat template name)."""
    return {k: v for k, v in _table().items() if k != "chat_templates"}


def parse_name(name: str) -> tuple[str, int]:
    """``paw-shape/qwen2.5-7b@4`` -> ``("qwen2.5-7b", 4)``; no ``@`` means the published depth."""
    base, _, depth = name[len(PREFIX) :].partition("@")
    if base not in shapes():
        raise PawError(
            f"unknown stand-in '{name}'{did_you_mean(base, list(shapes()))}; built-in: "
            f"{', '.join(PREFIX + s for s in shapes())} (optionally @<layers>, e.g. {PREFIX}qwen2.5-0.5b@4)"
        )
    full = shapes()[base]["config"]["num_hidden_layers"]
    if not depth:
        return base, full
    if not depth.isdigit() or not 1 <= int(depth) <= full:
        raise PawError(f"'{name}': the depth after @ must be a number of layers from 1 to {full}")
    return base, int(depth)


def weight_seed(base: str, seed: int) -> int:
    """A seed of the model's own, so two stand-ins never draw the same weights."""
    return named_seed(PREFIX + base, seed)


def stand_in_dir(name: str, seed: int = 0) -> Path:
    """The cached dir of a stand-in, built first if needed (needs the real tokenizers in the cache)."""
    base, layers = parse_name(name)
    target = cache_dir() / "shape" / f"{base}@{layers}-seed{seed}-v{SHAPE_VERSION}"
    return build_atomically(target, lambda out: build_stand_in(base, layers, out, seed))


def stand_in_tokenizer(base: str):
    """The real tokenizer of ``base`` with the family's special tokens, chat template and stop tokens."""
    from transformers import AutoTokenizer

    from paw.models.real_tokenizers import tokenizer_dir

    spec = shapes()[base]
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir(spec["tokenizer"]))
    if spec.get("specials"):
        tokenizer.add_special_tokens({"additional_special_tokens": list(spec["specials"])})
    named = [spec[role] for role in ("bos", "eos", "pad") if spec[role]] + list(spec["stop"])
    absent = [token for token in named if token not in tokenizer.get_vocab()]
    if absent:
        raise PawError(f"shapes.yaml: {base}: {absent} not in the {spec['tokenizer']} vocabulary")
    for role in ("bos", "eos", "pad"):
        setattr(tokenizer, f"{role}_token", spec[role])
    tokenizer.chat_template = _table()["chat_templates"][spec["chat_template"]]
    tokenizer.model_max_length = spec["config"]["max_position_embeddings"]
    if len(tokenizer) > spec["config"]["vocab_size"]:
        raise PawError(f"{base}: tokenizer has {len(tokenizer)} tokens, more than vocab_size")
    return tokenizer


def _available_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def stand_in_config(base: str, layers: int, tokenizer):
    """The published config of ``base`` cut to ``layers``, with the special-token ids of its tokenizer."""
    from transformers import AutoConfig

    spec = shapes()[base]
    ids = {
        role: tokenizer.convert_tokens_to_ids(spec[role]) if spec[role] else None
        for role in ("bos", "eos", "pad")
    }
    return AutoConfig.for_model(
        spec["model_type"],
        **{**spec["config"], "num_hidden_layers": layers},
        bos_token_id=ids["bos"],
        eos_token_id=ids["eos"],
        pad_token_id=ids["pad"],
    )


def parameter_count(config) -> int:
    """Parameters of a model of ``config``, counted on the meta device (nothing allocated)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config).num_parameters()


def build_stand_in(base: str, layers: int, out_dir: Path, seed: int = 0) -> Path:
    """Build ``paw-shape/<base>@<layers>`` into ``out_dir`` (bf16 safetensors, tokenizer, generation config)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    from paw.utils.hf import quiet_hf

    quiet_hf()
    spec = shapes()[base]
    tokenizer = stand_in_tokenizer(base)
    config = stand_in_config(base, layers, tokenizer)
    params = parameter_count(config)
    available = _available_bytes()
    if available is not None and params * 2 * 1.3 > available:
        raise PawError(
            f"{PREFIX}{base}@{layers} has {params / 1e9:.1f}B parameters (~{params * 2 / 2**30:.0f} GiB in bf16); "
            f"this machine has {available / 2**30:.0f} GiB free. Cut its depth, e.g. {PREFIX}{base}@4"
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(weight_seed(base, seed))
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    stops = [tokenizer.convert_tokens_to_ids(t) for t in spec["stop"]]
    model.generation_config = GenerationConfig(
        bos_token_id=config.bos_token_id, eos_token_id=stops, pad_token_id=config.pad_token_id
    )
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    atomic_write_json(
        Path(out_dir) / RECORD,
        {
            "name": f"{PREFIX}{base}@{layers}",
            "mirrors": spec["mirrors"],
            "layers": layers,
            "published_layers": spec["config"]["num_hidden_layers"],
            "parameters": params,
            "tokenizer": spec["tokenizer"],
            "weight_seed": weight_seed(base, seed),
            "version": SHAPE_VERSION,
            "note": "random weights in the published shape: for speed, memory and parity checks only",
        },
    )
    return Path(out_dir)
