"""Stream base-model weights one tensor at a time from safetensors files (sharded or not), in fp32.

Transfer never loads a whole model: it reads the one weight matrix a module needs, for source and target.
"""

from __future__ import annotations

import json
from pathlib import Path

from paw.errors import PawError


class WeightStore:
    """Read-only access to the tensors of a local model dir by name."""

    def __init__(self, model_dir: str | Path, label: str):
        self.dir = Path(model_dir)
        self.label = label
        index = self.dir / "model.safetensors.index.json"
        if index.is_file():
            self.files = dict(json.loads(index.read_text(encoding="utf-8"))["weight_map"])
        elif (self.dir / "model.safetensors").is_file():
            from safetensors import safe_open

            with safe_open(str(self.dir / "model.safetensors"), framework="pt") as handle:
                self.files = {key: "model.safetensors" for key in handle.keys()}
        else:
            raise PawError(f"{label} model {self.dir}: no safetensors weights (paw reads safetensors only)")
        self.config = json.loads((self.dir / "config.json").read_text(encoding="utf-8"))

    def __contains__(self, key: str) -> bool:
        return key in self.files

    def get(self, key: str):
        import torch
        from safetensors import safe_open

        if key not in self.files:
            raise PawError(f"{self.label} model has no weight '{key}'")
        with safe_open(str(self.dir / self.files[key]), framework="pt") as handle:
            return handle.get_tensor(key).to(torch.float32)

    @property
    def model_type(self) -> str:
        return self.config.get("model_type", "?")

    @property
    def num_layers(self) -> int:
        return int(self.config["num_hidden_layers"])

    def dims(self) -> dict[str, int]:
        c = self.config
        heads = c["num_attention_heads"]
        head_dim = c.get("head_dim") or c["hidden_size"] // heads
        return {
            "q": heads * head_dim,
            "kv": c.get("num_key_value_heads", heads) * head_dim,
            "intermediate": c["intermediate_size"],
        }


def local_model_dir(name: str, models_dir: str | None, label: str) -> Path:
    """Resolve a model reference to a local dir (transfer reads weight files directly)."""
    from paw.models.resolve import resolve_model

    resolved = resolve_model(name, models_dir)
    if not Path(resolved.location).is_dir():
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(resolved.location, allow_patterns=["*.json", "*.safetensors"]))
        except Exception as err:  # offline or gated
            raise PawError(
                f"--{label} {name}: not a local dir and the hub copy could not be fetched ({type(err).__name__}); "
                "download it where the hub is reachable and pass the local dir"
            ) from None
    return Path(resolved.location)
