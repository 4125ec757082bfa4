"""Checks on PEFT adapter dirs shared by training (init from an adapter) and evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Model

_SIZE_MISMATCH = re.compile(
    r"size mismatch for ([\w.]+): copying a param with shape (torch\.Size\(\[[\d, ]*\]\)) "
    r"from checkpoint, the shape in current model is (torch\.Size\(\[[\d, ]*\]\))"
)


def name_base(adapter: str | Path, name: str) -> None:
    """Record in adapter_config.json the base model as the user named it (``paw-tiny/qwen2``, a hub id, a dir),
    not the machine-local cache dir it was loaded from, so the adapter means the same on another machine."""
    config_file = Path(adapter) / "adapter_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = name
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def adapter_base(adapter: str | Path) -> str | None:
    """The base model an adapter was trained on, from its adapter_config.json."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")


WEIGHTS = "adapter_model.safetensors"
PROMPT_LEARNING_TYPES = ("PREFIX_TUNING", "PROMPT_TUNING", "P_TUNING", "MULTITASK_PROMPT_TUNING")


def adapter_type(adapter: str | Path) -> str | None:
    """peft_type from an adapter's adapter_config.json (LORA, ADALORA, IA3, PREFIX_TUNING, ...)."""
    config = Path(adapter) / "adapter_config.json"
    if not config.is_file():
        return None
    return json.loads(config.read_text(encoding="utf-8")).get("peft_type")


def check_adapter_dir(adapter: str | Path, label: str = "--adapter") -> Path:
    """An adapter dir every command can trust, checked before any model loads: a readable adapter_config.json
    naming its peft_type, and an adapter_model.safetensors that is complete (header and every tensor readable)
    and finite. Anything else is one PawError naming the file."""
    path = Path(adapter)
    read_adapter_config(path, label)
    check_adapter_weights(path, label)
    return path


def read_adapter_config(adapter: str | Path, label: str = "--adapter") -> dict[str, Any]:
    """The adapter's adapter_config.json: present, valid JSON, naming a peft_type."""
    path = Path(adapter)
    if not path.is_dir():
        raise PawError(f"{label}: {path} does not exist")
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise PawError(f"{label}: {path} is not a PEFT adapter dir (no adapter_config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PawError(f"{label}: {config_file} is not valid JSON ({err})") from None
    if not isinstance(config, dict) or not config.get("peft_type"):
        raise PawError(f"{label}: {config_file} names no peft_type: not an adapter config")
    return config


def check_adapter_weights(adapter: str | Path, label: str = "--adapter") -> None:
    """adapter_model.safetensors: present (not only a pickle), non-empty, every tensor readable and finite."""
    path = Path(adapter)
    weights = path / WEIGHTS
    if not weights.is_file():
        found = "adapter_model.bin (a pickle)" if (path / "adapter_model.bin").is_file() else "no weights"
        raise PawError(f"{label}: {weights} is missing ({found}); paw loads safetensors only")
    _check_weights(weights, label)


def _check_weights(weights: Path, label: str) -> None:
    import torch
    from safetensors import SafetensorError, safe_open

    if weights.stat().st_size == 0:
        raise PawError(f"{label}: {weights} is empty")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            keys = list(handle.keys())
            if not keys:
                raise PawError(f"{label}: {weights} holds no tensors")
            for key in keys:
                tensor = handle.get_tensor(key)
                if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                    raise PawError(f"{label}: {weights}: tensor {key} holds NaN or infinite values")
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise PawError(
            f"{label}: {weights} is not a readable safetensors file (truncated or corrupted: {err})"
        ) from None


def check_all_keys_loaded(model: Model, adapter: Path, label: str = "--adapter") -> None:
    """peft only warns when adapter weights find no module; for evaluation that is a wrong result, so refuse."""
    from safetensors import safe_open

    if adapter_type(adapter) in PROMPT_LEARNING_TYPES:  # virtual tokens: their tensors belong to no module
        return
    weights = adapter / WEIGHTS
    if not weights.is_file():
        raise PawError(f"{label} {adapter}: no adapter_model.safetensors (paw loads safetensors only)")
    with safe_open(str(weights), framework="pt") as handle:
        saved = list(handle.keys())
    loaded = {name.replace(".default", "") for name, _ in model.named_parameters()}
    # a DoRA magnitude is saved as ``...lora_magnitude_vector`` but lives in a module as ``...lora_magnitude_vector.weight``
    missing = [key for key in saved if key not in loaded and f"{key}.weight" not in loaded]
    if missing:
        model_type = getattr(model.config, "model_type", "the base model")
        raise PawError(
            f"{label} {adapter} does not fit this base model: {len(missing)} of its {len(saved)} tensors match no "
            f"module of {model_type} (first: {missing[0]}); evaluate it on the base it was trained on "
            f"({adapter_base(adapter)})"
        )


def base_model_for(
    model_ref: str | None,
    adapter: str | None,
    label: str = "--adapter",
    other_base: bool = False,
    models_dir: str | None = None,
) -> tuple[str, Path | None]:
    """(base model, adapter dir): the base defaults to the one the adapter's config names. A base that is not the
    one the adapter names is refused (an adapter on the wrong base gives wrong numbers, not an error) unless
    ``other_base`` says it is meant (e.g. a base adapter on the instruct model of the same architecture)."""
    adapter_path = check_adapter_dir(adapter, label) if adapter else None
    trained_on = adapter_base(adapter_path) if adapter_path else None
    if model_ref is None:
        if trained_on is None:
            raise PawError("--model: name the base model (or give an --adapter whose config names it)")
        return trained_on, adapter_path
    if trained_on and not other_base:
        from paw.models.resolve import same_model

        if same_model(model_ref, trained_on, models_dir) is False:
            raise PawError(
                f"{label} {adapter_path} was trained on {trained_on} (adapter_config.json "
                f"base_model_name_or_path), not on --model {model_ref}; drop --model to use its base, or add "
                "--other-base to apply it to this model anyway"
            )
    return model_ref, adapter_path


def attach_adapter(model: Model, adapter: Path, label: str = "--adapter", trainable: bool = False):
    """``PeftModel.from_pretrained`` that turns every way an adapter can fail to fit into one PawError:
    a shape mismatch (module and both shapes named), target modules absent, or tensors matching no module."""
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(model, str(adapter), is_trainable=trainable)
    except RuntimeError as err:
        match = _SIZE_MISMATCH.search(str(err))
        if not match:
            raise
        name, saved, current = match.groups()
        raise PawError(
            f"{label} {adapter} does not fit this base model: {name} is {saved} in the adapter but the model "
            f"needs {current}; use the base it was trained on ({adapter_base(adapter)})"
        ) from None
    except ValueError as err:
        raise PawError(
            f"{label} {adapter} does not fit this base model: {str(err).splitlines()[0]}"
        ) from None
    check_all_keys_loaded(peft_model, adapter, label)
    if (
        trainable
    ):  # trained on: it is saved again, against the base it is on now (a local path, no hub lookup)
        peft_model.peft_config["default"].base_model_name_or_path = getattr(model, "name_or_path", None)
    return peft_model
