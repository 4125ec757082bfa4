"""``paw merge``: fold an adapter into its base model and save a standalone model (safetensors, sharded) with the
tokenizer, so it serves without peft.

W' = W + ΔW for LoRA/rsLoRA/AdaLoRA (ΔW = (α/r)·B·A), W' = m · (W + ΔW)/‖W + ΔW‖ for DoRA, W' = W · diag(l)
for IA³ — peft's ``merge_and_unload(safe_merge=True)``, which refuses a merge that produces NaNs. The base is
always loaded unquantized (``dtype``), so a QLoRA adapter is merged into the dequantized weights, never into 4-bit
ones (rounding the sum back to 4 bits would change the outputs). Prefix and prompt tuning add virtual tokens and
have no weight update to merge.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from paw.errors import PawError
from paw.models.adapter_files import (
    PROMPT_LEARNING_TYPES,
    adapter_base,
    adapter_type,
    attach_adapter,
    base_model_for,
)
from paw.models.chat import PROMPT_SPEC_FILE
from paw.utils.io import apply_umask, atomic_write_json, check_writable

MERGE_INFO = "merge_info.json"


def merge_adapter(
    adapter: str | Path,
    output: str | Path,
    model: str | None = None,
    dtype: str = "auto",
    max_shard_size: str = "2GB",
    models_dir: str | None = None,
    other_base: bool = False,
) -> dict[str, Any]:
    """Merge ``adapter`` into its base (``model``, default: the base its config names) and save it to ``output``."""
    from paw.models.load import LoadOptions, load_causal_lm
    from paw.models.loaded import tokenizer_for
    from paw.models.resolve import resolve_model
    from paw.utils.io import dir_fingerprint

    output = Path(output)
    if output.exists():
        raise PawError(f"--output {output} already exists; choose a new dir (paw never overwrites a model)")
    check_writable(output, "--output")  # before the model loads, not after
    model_ref, adapter_path = base_model_for(
        model, str(adapter), other_base=other_base, models_dir=models_dir
    )
    kind = adapter_type(adapter_path)
    if kind in PROMPT_LEARNING_TYPES:
        raise PawError(
            f"--adapter {adapter_path} is a {kind} adapter: it adds virtual tokens and changes no weight, so there "
            "is nothing to merge; serve it with peft (paw infer --adapter)"
        )
    resolved = resolve_model(model_ref, models_dir)
    options = LoadOptions(dtype=dtype)  # never quantized: merge into full-precision weights
    tokenizer = tokenizer_for(
        resolved, adapter_path, options
    )  # the adapter's own is checked before any weights
    base = load_causal_lm(resolved, options)
    peft_model = attach_adapter(base, adapter_path)
    try:
        merged = peft_model.merge_and_unload(safe_merge=True)
    except ValueError as err:
        raise PawError(f"--adapter {adapter_path}: merging failed: {str(err).splitlines()[0]}") from None
    staging = output.with_name(f".{output.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    merged.save_pretrained(staging, max_shard_size=max_shard_size)
    tokenizer.save_pretrained(staging)
    if (adapter_path / PROMPT_SPEC_FILE).is_file():  # the merged model is prompted as the adapter was trained
        shutil.copy2(adapter_path / PROMPT_SPEC_FILE, staging / PROMPT_SPEC_FILE)
    info = {
        "base": model_ref,
        "adapter_trained_on": adapter_base(adapter_path),
        "base_fingerprint": dir_fingerprint(resolved.location),
        "adapter": str(adapter_path),
        "adapter_type": kind,
        "adapter_fingerprint": dir_fingerprint(adapter_path),
        "dtype": str(next(merged.parameters()).dtype).removeprefix("torch."),
    }
    atomic_write_json(staging / MERGE_INFO, info)
    apply_umask(staging)
    staging.rename(output)
    return info
