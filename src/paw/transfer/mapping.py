"""Module and layer mapping across Llama/Qwen2/Gemma2/Phi3 naming.

Adapters are first split into canonical *units* ``(layer, kind)`` with kind in q/k/v/o/gate/up/down. Phi-3's
fused ``qkv_proj`` and ``gate_up_proj`` are split by rows of B (A is shared: ΔW_q = B[:q]·A), and joined again
for a Phi-3 target as ``B = blockdiag(B_q, B_k, B_v)``, ``A = [A_q; A_k; A_v]`` (rank adds up; written with
``rank_pattern``), which is exact.

Depth modes: ``name`` (same index; source layers past the target's depth are dropped and reported) and
``proportional`` (``l_t = round(l_s·(L_t−1)/(L_s−1))``; units landing on the same target unit are summed);
``cka`` (linear CKA of hidden states on calibration text + a monotone alignment, see ``cka.py``);
``reversed`` (``l_t = L_t−1−l_s``, a wrong map on purpose: the control in benchmarks/transfer_quality.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from paw.errors import PawError
from paw.transfer.adapter_io import LoraModule
from paw.transfer.weights import WeightStore

KINDS = ("q", "k", "v", "o", "gate", "up", "down")
BLOCK = {
    "q": "self_attn",
    "k": "self_attn",
    "v": "self_attn",
    "o": "self_attn",
    "gate": "mlp",
    "up": "mlp",
    "down": "mlp",
}
FUSED = {"qkv_proj": ("q", "k", "v"), "gate_up_proj": ("gate", "up")}
_PATH = re.compile(r"^(?P<prefix>.*\.layers)\.(?P<layer>\d+)\.(?P<block>self_attn|mlp)\.(?P<name>\w+)$")
DEPTH_MODES = ("name", "proportional", "cka", "reversed")


@dataclass(frozen=True)
class Unit:
    layer: int
    kind: str


def fused_model(store: WeightStore) -> bool:
    return any(key.endswith("qkv_proj.weight") for key in store.files)


def layer_prefix(store: WeightStore) -> str:
    for key in store.files:
        match = _PATH.match(key.removesuffix(".weight"))
        if match:
            return match.group("prefix")
    raise PawError(f"{store.label} model: no '<prefix>.layers.<i>.(self_attn|mlp).<name>' weights found")


def _split_sizes(store: WeightStore, name: str) -> list[int]:
    dims = store.dims()
    return [dims["q"], dims["kv"], dims["kv"]] if name == "qkv_proj" else [dims["intermediate"]] * 2


def adapter_units(modules: dict[str, LoraModule], store: WeightStore) -> dict[Unit, tuple[str, LoraModule]]:
    """Canonical units of an adapter (fused Phi-3 modules split); unsupported modules are a PawError."""
    units: dict[Unit, tuple[str, LoraModule]] = {}
    for path, module in modules.items():
        match = _PATH.match(path)
        name = match.group("name") if match else None
        if not match or (name not in FUSED and name.removesuffix("_proj") not in KINDS):
            raise PawError(
                f"adapter module '{path}' is not supported for transfer (paw maps attention q/k/v/o and MLP "
                "gate/up/down projections, and Phi-3's fused qkv_proj/gate_up_proj)"
            )
        layer = int(match.group("layer"))
        if name in FUSED:
            start = 0
            for kind, size in zip(FUSED[name], _split_sizes(store, name), strict=True):
                units[Unit(layer, kind)] = (path, LoraModule(A=module.A, B=module.B[start : start + size]))
                start += size
        else:
            units[Unit(layer, name.removesuffix("_proj"))] = (path, module)
    return units


def base_weight(store: WeightStore, unit: Unit):
    """The base weight matrix of a unit (a row slice of a fused Phi-3 weight where needed)."""
    prefix = layer_prefix(store)
    block = BLOCK[unit.kind]
    if fused_model(store) and unit.kind in ("q", "k", "v", "gate", "up"):
        name = "qkv_proj" if unit.kind in ("q", "k", "v") else "gate_up_proj"
        weight = store.get(f"{prefix}.{unit.layer}.{block}.{name}.weight")
        sizes = _split_sizes(store, name)
        index = FUSED[name].index(unit.kind)
        start = sum(sizes[:index])
        return weight[start : start + sizes[index]]
    return store.get(f"{prefix}.{unit.layer}.{block}.{unit.kind}_proj.weight")


def layer_map(source_layers: int, target_layers: int, mode: str) -> dict[int, int | None]:
    """Source layer -> target layer (None: no counterpart)."""
    if mode == "name":
        return {layer: (layer if layer < target_layers else None) for layer in range(source_layers)}
    if mode == "reversed":
        return {
            layer: (target_layers - 1 - layer if layer < target_layers else None)
            for layer in range(source_layers)
        }
    if mode == "proportional":
        if source_layers == 1:
            return {0: 0}
        return {
            layer: round(layer * (target_layers - 1) / (source_layers - 1)) for layer in range(source_layers)
        }
    raise PawError(f"--depth '{mode}' is unknown; choose from {', '.join(DEPTH_MODES)}")


def target_modules(units: dict[Unit, LoraModule], store: WeightStore) -> dict[str, LoraModule]:
    """Assemble target-model module paths from units, fusing for a Phi-3 target (exact, rank adds)."""
    import torch

    prefix = layer_prefix(store)
    out: dict[str, LoraModule] = {}
    fused = fused_model(store)
    grouped: dict[tuple[int, str], dict[str, LoraModule]] = {}
    for unit, module in units.items():
        if fused and unit.kind not in ("o", "down"):
            name = "qkv_proj" if unit.kind in ("q", "k", "v") else "gate_up_proj"
            grouped.setdefault((unit.layer, name), {})[unit.kind] = module
        else:
            out[f"{prefix}.{unit.layer}.{BLOCK[unit.kind]}.{unit.kind}_proj"] = module
    for (layer, name), parts in grouped.items():
        sizes = _split_sizes(store, name)
        in_dim = next(iter(parts.values())).A.shape[1]
        blocks_a, blocks_b = [], []
        for kind, size in zip(FUSED[name], sizes, strict=True):
            if kind not in parts:
                continue
            part = parts[kind]
            rows = torch.zeros(sum(sizes), part.rank)
            start = sum(sizes[: FUSED[name].index(kind)])
            rows[start : start + size] = part.B
            blocks_a.append(part.A)
            blocks_b.append(rows)
        A = torch.cat(blocks_a, dim=0) if blocks_a else torch.zeros(0, in_dim)
        out[f"{prefix}.{layer}.{BLOCK[FUSED[name][0]]}.{name}"] = LoraModule(
            A=A, B=torch.cat(blocks_b, dim=1)
        )
    return out
