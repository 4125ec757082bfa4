"""Load a model for evaluation or inference: a base model (any kind paw resolves), optionally with a PEFT adapter."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from paw.errors import PawError
from paw.models.adapter_files import attach_adapter, base_model_for
from paw.models.load import LoadOptions, load_causal_lm, load_config, load_tokenizer
from paw.models.resolve import ResolvedModel, resolve_model


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    name: str
    location: str
    adapter: str | None
    fingerprint: dict[str, str | None]
    prompt_spec: dict | None = None  # the adapter's paw_prompt.json, when paw trained it


def fingerprint(path: str | Path | None) -> str | None:
    """A short hash of a local model/adapter dir: config files in full, weight files by name, size and first MiB."""
    if path is None or not Path(path).is_dir():
        return None
    digest = hashlib.sha256()
    for file in sorted(Path(path).iterdir()):
        if file.suffix in (".json", ".safetensors", ".bin", ".model") and file.is_file():
            digest.update(file.name.encode())
            with file.open("rb") as handle:
                digest.update(handle.read() if file.suffix == ".json" else handle.read(2**20))
            digest.update(str(file.stat().st_size).encode())
    return digest.hexdigest()[:16]


def load_for_eval(
    model_ref: str | None, adapter: str | None, dtype: str = "auto", models_dir: str | None = None
) -> LoadedModel:
    """Load base (+ adapter) on the best device, in eval mode."""
    import torch

    model_ref, adapter_path = base_model_for(model_ref, adapter)
    resolved: ResolvedModel = resolve_model(model_ref, models_dir)
    options = LoadOptions(dtype=dtype)
    has_own_tokenizer = adapter_path is not None and (adapter_path / "tokenizer_config.json").is_file()
    tokenizer_source = (
        ResolvedModel(str(adapter_path), str(adapter_path), "local") if has_own_tokenizer else resolved
    )
    tokenizer = load_tokenizer(tokenizer_source, options)
    if has_own_tokenizer:
        _check_tokenizer_fits(tokenizer, resolved, adapter_path, options)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_causal_lm(resolved, options).to(device)
    if adapter_path is not None:
        model = attach_adapter(model, adapter_path)
    model.eval()
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=model_ref,
        location=resolved.location,
        adapter=str(adapter_path) if adapter_path else None,
        fingerprint={"model": fingerprint(resolved.location), "adapter": fingerprint(adapter_path)},
        # how the adapter was trained (or, for a model paw merged, how its adapter was)
        prompt_spec=_prompt_spec(adapter_path) or _prompt_spec(Path(resolved.location)),
    )


def _check_tokenizer_fits(tokenizer: Any, base: ResolvedModel, adapter: Path, options: LoadOptions) -> None:
    """An adapter's own tokenizer with ids past the base's vocabulary was made for another base: every such id
    would index past the embedding table. Refused before the weights load."""
    vocab = getattr(load_config(base, options), "vocab_size", None)
    if vocab and len(tokenizer) > vocab:
        raise PawError(
            f"--adapter {adapter}: its tokenizer (tokenizer.json) has {len(tokenizer)} tokens, more than the "
            f"{vocab} of {base.name}'s vocabulary: it was not made for this base"
        )


def _prompt_spec(adapter: Path | None) -> dict | None:
    from paw.models.chat import PROMPT_SPEC_FILE

    path = adapter / PROMPT_SPEC_FILE if adapter is not None and adapter.is_dir() else None
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else None
