"""Export a Phi-3 LoRA adapter with its fused modules split, for servers that expect the unfused names.

Phi-3 fuses q/k/v into ``qkv_proj`` and gate/up into ``gate_up_proj``. A LoRA on a fused module is exactly a set
of LoRAs on its parts sharing ``A``: ΔW = B·A with B = [B_q; B_k; B_v] gives ΔW_q = B_q·A, and so on. The export
writes ``q_proj``/``k_proj``/``v_proj`` and ``gate_proj``/``up_proj`` modules (scale folded in, ``lora_alpha = r``);
``o_proj``/``down_proj`` pass unchanged. Serving stacks that re-pack modules (vLLM's packed_modules_mapping) load
it; transformers' fused Phi-3 has no such modules, so keep the original adapter for peft.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from paw.errors import PawError
from paw.transfer.adapter_io import read_lora, write_lora
from paw.transfer.mapping import BLOCK, FUSED, adapter_units, layer_prefix
from paw.transfer.weights import WeightStore, local_model_dir
from paw.utils.io import check_writable


def unfuse_adapter(
    adapter: str | Path, output: str | Path, model: str | None = None, models_dir: str | None = None
) -> dict[str, Any]:
    output = Path(output)
    if output.exists():
        raise PawError(
            f"--output {output} already exists; choose a new dir (paw never overwrites an adapter)"
        )
    check_writable(output, "--output")  # before any weight is read
    lora = read_lora(adapter)
    base = model or lora.base_model
    if not base:
        raise PawError("--model: the adapter config names no base model; pass --model")
    names = {path.rsplit(".", 1)[-1] for path in lora.modules}
    if not names & set(FUSED):
        raise PawError(
            f"--adapter {adapter}: no fused module (qkv_proj, gate_up_proj) to split; it is already unfused"
        )
    store = WeightStore(local_model_dir(base, models_dir, "model"), "base")
    prefix = layer_prefix(store)
    units = adapter_units(lora.modules, store)
    modules = {
        f"{prefix}.{u.layer}.{BLOCK[u.kind]}.{u.kind}_proj": module for u, (_, module) in units.items()
    }
    write_lora(output, modules, lora.r, lora.base_model or base)
    return {"modules": len(modules), "from": len(lora.modules), "output": str(output)}
