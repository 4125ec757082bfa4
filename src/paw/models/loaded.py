"""Load a model for evaluation or inference: a base model (any kind paw resolves), optionally with a PEFT adapter."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from paw.errors import PawError
from paw.models.adapter_files import attach_adapter, base_model_for
from paw.models.load import LoadOptions, load_causal_lm, load_config, load_tokenizer
from paw.models.resolve import ResolvedModel, resolve_model
from paw.utils.io import dir_fingerprint

if TYPE_CHECKING:
    from paw.utils.hf_types import Model, Tokenizer


@dataclass
class LoadedModel:
    model: Model
    tokenizer: Tokenizer
    name: str
    location: str
    adapter: str | None
    fingerprint: dict[str, str | None]
    prompt_spec: dict | None = None  # the adapter's paw_prompt.json, when paw trained it


def load_for_eval(
    model_ref: str | None,
    adapter: str | None,
    dtype: str = "auto",
    models_dir: str | None = None,
    other_base: bool = False,
) -> LoadedModel:
    """Load base (+ adapter) on the best device, in eval mode (``other_base``: see ``base_model_for``)."""
    import torch

    model_ref, adapter_path = base_model_for(model_ref, adapter, other_base=other_base, models_dir=models_dir)
    resolved: ResolvedModel = resolve_model(model_ref, models_dir)
    options = LoadOptions(dtype=dtype)
    tokenizer = tokenizer_for(resolved, adapter_path, options)
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
        fingerprint={"model": dir_fingerprint(resolved.location), "adapter": dir_fingerprint(adapter_path)},
        # how the adapter was trained (or, for a model paw merged, how its adapter was)
        prompt_spec=_prompt_spec(adapter_path) or _prompt_spec(Path(resolved.location)),
    )


def tokenizer_for(base: ResolvedModel, adapter: Path | None, options: LoadOptions) -> Tokenizer:
    """The tokenizer to run ``base`` (+ ``adapter``) with: the adapter's own when it saved one (checked to fit
    the base, before any weights load), else the base's."""
    if adapter is None or not (adapter / "tokenizer_config.json").is_file():
        return load_tokenizer(base, options)
    tokenizer = load_tokenizer(ResolvedModel(str(adapter), str(adapter), "local"), options)
    _check_tokenizer_fits(tokenizer, base, adapter, options)
    return tokenizer


def _check_tokenizer_fits(
    tokenizer: Tokenizer, base: ResolvedModel, adapter: Path, options: LoadOptions
) -> None:
    """An adapter's own tokenizer made for another base is refused before the weights load: ids past the base's
    vocabulary would index past the embedding table, and a special token (end of sequence, padding, ...) with
    another id than the base's would end or pad generations at the wrong token."""
    vocab = getattr(load_config(base, options), "vocab_size", None)
    if vocab and len(tokenizer) > vocab:
        raise PawError(
            f"--adapter {adapter}: its tokenizer (tokenizer.json) has {len(tokenizer)} tokens, more than the "
            f"{vocab} of {base.name}'s vocabulary: it was not made for this base"
        )
    base_tokenizer = load_tokenizer(base, options)
    for token in base_tokenizer.all_special_tokens:
        expected, got = base_tokenizer.convert_tokens_to_ids(token), tokenizer.convert_tokens_to_ids(token)
        if got != expected:
            raise PawError(
                f"--adapter {adapter}: its tokenizer gives the special token {token!r} id {got}, {base.name}'s "
                f"gives {expected}: it was not made for this base"
            )


def _prompt_spec(adapter: Path | None) -> dict | None:
    from paw.models.chat import PROMPT_SPEC_FILE

    path = adapter / PROMPT_SPEC_FILE if adapter is not None and adapter.is_dir() else None
    return json.loads(path.read_text(encoding="utf-8")) if path is not None and path.is_file() else None
