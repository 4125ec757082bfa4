"""An adapter directory vLLM's ``--lora-modules`` loads, checked first against what vLLM refuses (its
``PEFTHelper.validate_legal``): only LoRA (no DoRA magnitudes, no AdaLoRA/IA3/prompt learning: merge those
instead), no trained biases, no ``modules_to_save``, and a rank within ``--max-lora-rank`` (the serve command
raises it when the adapter needs more than vLLM's default 16). Phi-3's fused ``qkv_proj``/``gate_up_proj`` LoRA is
written with the modules split (exact; ``paw.transfer.unfuse``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from paw.errors import PawError

DEFAULT_MAX_RANK = 16
RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the --max-lora-rank values vLLM accepts
COPIED = ("adapter_config.json", "adapter_model.safetensors", "paw_prompt.json")


def check(adapter: Path) -> dict[str, Any]:
    """The adapter's config when vLLM can serve it; else one PawError saying what to do instead."""
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    kind = config.get("peft_type")
    merge = "export --format merged (the adapter folded into the base) and serve that"
    if kind != "LORA":
        raise PawError(f"--format vllm: vLLM serves LoRA adapters only, this one is {kind}; {merge}")
    if config.get("use_dora"):
        raise PawError(f"--format vllm: vLLM does not serve DoRA adapters (their magnitude vectors); {merge}")
    if config.get("bias", "none") != "none":
        raise PawError(
            f"--format vllm: the adapter trains biases (bias: {config['bias']}), which vLLM refuses; {merge}"
        )
    if config.get("modules_to_save"):
        saved = ", ".join(config["modules_to_save"])
        raise PawError(
            f"--format vllm: the adapter trains whole modules ({saved}), which vLLM refuses; {merge}"
        )
    return config


def max_rank(config: dict[str, Any]) -> int:
    return max([int(config.get("r", 8)), *map(int, (config.get("rank_pattern") or {}).values())])


def write(adapter: Path, staging: Path, base: str) -> dict[str, Any]:
    """The vLLM adapter dir in ``staging``; returns the serve command and what was done to the adapter."""
    config = check(adapter)
    targets = config.get("target_modules") or []
    fused = {"qkv_proj", "gate_up_proj"} & set(targets if isinstance(targets, list) else [targets])
    if fused:
        from paw.transfer.unfuse import unfuse_adapter

        unfuse_adapter(adapter, staging, base)
        if (adapter / "paw_prompt.json").is_file():
            shutil.copy2(adapter / "paw_prompt.json", staging / "paw_prompt.json")
    else:
        staging.mkdir()
        for name in COPIED:
            if (adapter / name).is_file():
                shutil.copy2(adapter / name, staging / name)
    rank = max_rank(config)
    flag = next(r for r in RANKS if r >= rank) if rank <= RANKS[-1] else None
    if flag is None:
        raise PawError(
            f"--format vllm: rank {rank} is above the largest --max-lora-rank vLLM takes ({RANKS[-1]})"
        )
    return {"rank": rank, "max_lora_rank": flag, "unfused": sorted(fused)}


def serve_command(base: str, output: Path, rank_flag: int) -> str:
    extra = f" --max-lora-rank {rank_flag}" if rank_flag > DEFAULT_MAX_RANK else ""
    return f"vllm serve {base} --enable-lora --lora-modules {output.name}={output}{extra}"
