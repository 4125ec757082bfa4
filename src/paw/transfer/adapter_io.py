"""Read any PEFT LoRA adapter dir and write a standard one (loads with plain ``PeftModel.from_pretrained``).

Everything is fp32 and per module ``ΔW = s·B·A`` with ``s = α/r`` (``α/√r`` with rsLoRA). paw folds ``s`` into B
when reading, so a written adapter has ``lora_alpha = r`` (scale 1), and a module whose rank differs from ``r``
gets ``rank_pattern``/``alpha_pattern`` entries that keep its scale at 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from paw.errors import PawError
from paw.utils.io import apply_umask

WEIGHTS = "adapter_model.safetensors"
PREFIX = "base_model.model."


@dataclass
class LoraModule:
    """One adapted linear layer: ``A`` is (r, in), ``B`` is (out, r), scale already folded into ``B``."""

    A: Any
    B: Any

    @property
    def rank(self) -> int:
        return int(self.A.shape[0])

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.B.shape[0]), int(self.A.shape[1])


@dataclass
class LoraAdapter:
    modules: dict[str, LoraModule]  # module path in the base model, e.g. model.layers.0.self_attn.q_proj
    r: int
    base_model: str | None
    config: dict[str, Any] = field(default_factory=dict)


def read_lora(path: str | Path) -> LoraAdapter:
    """Read a LoRA adapter dir; a missing dir, a non-LoRA adapter or a DoRA adapter is a PawError."""
    import torch
    from safetensors.torch import load_file

    from paw.models.adapter_files import check_adapter_weights, read_adapter_config

    path = Path(path)
    config = read_adapter_config(path)
    if config.get("peft_type") != "LORA":
        raise PawError(
            f"--adapter: {path} is a {config.get('peft_type')} adapter; paw transfers LoRA adapters only"
        )
    if config.get("use_dora"):
        raise PawError(
            f"--adapter: {path} is a DoRA adapter; its magnitude vector has no transfer rule, use LoRA"
        )
    check_adapter_weights(path)  # complete, readable, finite: or one PawError naming the file
    tensors = load_file(str(path / WEIGHTS))
    r = int(config["r"])
    modules: dict[str, LoraModule] = {}
    for key in tensors:
        if ".lora_A." not in key:
            if ".lora_B." not in key:
                raise PawError(
                    f"--adapter: {path}: tensor '{key}' is not a LoRA factor (modules_to_save is not transferable)"
                )
            continue
        module = key.split(".lora_A.")[0].removeprefix(PREFIX)
        b_key = key.replace(".lora_A.", ".lora_B.")
        if b_key not in tensors:
            raise PawError(f"--adapter: {path}: '{key}' has no matching lora_B")
        A, B = tensors[key].to(torch.float32), tensors[b_key].to(torch.float32)
        rank = A.shape[0]
        short = module.rsplit(".", 1)[-1]
        rank = int(
            config.get("rank_pattern", {}).get(module, config.get("rank_pattern", {}).get(short, rank))
        )
        alpha = float(
            config.get("alpha_pattern", {}).get(
                module, config.get("alpha_pattern", {}).get(short, config["lora_alpha"])
            )
        )
        scale = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
        modules[module] = LoraModule(A=A, B=B * scale)
    if not modules:
        raise PawError(f"--adapter: {path} holds no LoRA tensors")
    return LoraAdapter(modules=modules, r=r, base_model=config.get("base_model_name_or_path"), config=config)


def write_lora(path: str | Path, modules: dict[str, LoraModule], r: int, base_model: str) -> Path:
    """Write ``modules`` as a PEFT LoRA adapter for ``base_model`` (scale 1 everywhere)."""
    from peft import LoraConfig, TaskType
    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=False)
    rank_pattern = {m: mod.rank for m, mod in modules.items() if mod.rank != r}
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=r,
        lora_alpha=r,
        target_modules=sorted(modules),
        rank_pattern=rank_pattern,
        alpha_pattern=dict(rank_pattern),
        base_model_name_or_path=base_model,
    )
    config.save_pretrained(str(path))
    tensors = {}
    for module, mod in modules.items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = (
            mod.A.float().clone()
        )  # own storage: parts of a fused module share A
        tensors[f"{PREFIX}{module}.lora_B.weight"] = mod.B.float().clone()
    save_file(tensors, str(path / WEIGHTS), metadata={"format": "pt"})
    return apply_umask(path)
