"""``paw export SOURCE --format gguf|ollama|merged --output DIR``: one command from a trained adapter (or the
experiment that made it) to what a serving stack loads.

- ``merged``: the adapter folded into its base (``paw merge``), safetensors and tokenizer.
- ``gguf``: that merged model as one GGUF (``--outtype`` f16, bf16, q8_0 or f32; chat template and special tokens
  in its metadata) and, for a LoRA, the adapter alone as a GGUF LoRA (``llama-cli -m base.gguf --lora ...``), both
  written by llama.cpp's own converters.
- ``ollama``: the GGUF and a ``Modelfile`` prompting the model as it was trained (``ollama create NAME -f
  DIR/Modelfile``).
- ``vllm``: the adapter itself, checked against what vLLM refuses (Phi-3's fused modules split), and the
  ``vllm serve ... --enable-lora --lora-modules`` command (``paw.export.vllm``).

Everything is written to a hidden staging dir beside ``--output`` and renamed into place when complete, so an
interrupted or refused export leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from paw.errors import PawError
from paw.models.real_tokenizers import table
from paw.utils.io import apply_umask, atomic_write_json, atomic_write_text, check_writable, sha256_file

FORMATS = ("gguf", "ollama", "vllm", "merged")
INFO_FILE = "export_info.json"
GGUF_LORA_TYPES = ("LORA",)  # what convert_lora_to_gguf.py reads (not DoRA's magnitudes, AdaLoRA or IA3)


def adapter_of(source: str | Path) -> Path:
    """The adapter dir ``source`` names: an adapter dir itself, or an experiment (dir or name) with a final one."""
    path = Path(source).expanduser()
    if (path / "adapter_config.json").is_file():
        return path
    if not path.exists() and len(path.parts) > 1:  # a path, not an experiment name
        raise PawError(f"paw export: no adapter dir or experiment at {source}")
    from paw.experiment.layout import find_experiment

    exp, _ = find_experiment(str(source), label="paw export")
    if not (exp.final_model / "adapter_config.json").is_file():
        raise PawError(
            f"experiment {exp.dir} has no final adapter (models/final_model); did training finish?"
        )
    return exp.final_model


def export(
    source: str | Path,
    fmt: str,
    output: str | Path,
    outtype: str = "f16",
    model: str | None = None,
    dtype: str = "auto",
    other_base: bool = False,
) -> dict[str, Any]:
    """Export ``source`` (an adapter dir or an experiment) as ``fmt`` into the new dir ``output``."""
    from paw.export.llama_cpp import OUTTYPES

    if fmt not in FORMATS:
        raise PawError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    if outtype not in OUTTYPES:
        raise PawError(f"--outtype must be one of {', '.join(OUTTYPES)}, got '{outtype}'")
    output = Path(output)
    if output.exists():
        raise PawError(f"--output {output} already exists; choose a new dir (paw never overwrites an export)")
    check_writable(output, "--output")
    adapter = adapter_of(source)
    if fmt == "vllm":
        from paw.export.vllm import check

        check(adapter)  # what vLLM refuses is said before anything is written
    if fmt in ("gguf", "ollama"):
        from paw.export.llama_cpp import converters_dir

        converters_dir()  # the converters are found (or extracted) before any model loads
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=output.parent, prefix=f".{output.name}.partial-") as tmp:
        staging = Path(tmp) / "out"
        if fmt == "vllm":
            info = _write_vllm(adapter, staging, output, model, other_base)
        else:
            info = _write(adapter, fmt, staging, Path(tmp), outtype, model, dtype, other_base)
        atomic_write_json(staging / INFO_FILE, info)
        apply_umask(staging)
        staging.rename(output)
    return info


def _write(
    adapter: Path,
    fmt: str,
    staging: Path,
    work: Path,
    outtype: str,
    model: str | None,
    dtype: str,
    other_base: bool,
) -> dict[str, Any]:
    from paw.models.adapter_files import adapter_type
    from paw.models.merge import merge_adapter

    merged_dir = staging if fmt == "merged" else work / "merged"
    merged = merge_adapter(adapter, merged_dir, model, dtype, other_base=other_base)
    info: dict[str, Any] = {"format": fmt, "source": str(adapter), "merge": merged, "files": {}}
    if fmt == "merged":
        return info
    from paw.export.llama_cpp import lora_to_gguf, model_to_gguf
    from paw.models.resolve import resolve_model

    staging.mkdir()
    src = table()["source"]
    info["converter"] = f"llama.cpp from {src['package']}=={src['version']}"
    name = f"model-{outtype}.gguf"
    model_to_gguf(merged_dir, staging / name, outtype)
    info["files"][name] = sha256_file(staging / name)
    kind = adapter_type(adapter)
    lora = kind in GGUF_LORA_TYPES and not _uses_dora(adapter)
    if fmt == "gguf" and lora:
        base = resolve_model(merged["base"], build_tiny=False).location
        lora_to_gguf(adapter, Path(base), staging / f"adapter-{outtype}.gguf", outtype)
        info["files"][f"adapter-{outtype}.gguf"] = sha256_file(staging / f"adapter-{outtype}.gguf")
    elif fmt == "gguf":
        info["adapter_gguf"] = (
            f"not written: llama.cpp's LoRA converter takes plain LoRA, not {_kind(adapter)}"
        )
    if fmt == "ollama":
        from paw.export.ollama import modelfile

        atomic_write_text(staging / "Modelfile", modelfile(name, _prompt_spec(merged_dir)))
    return info


def _write_vllm(
    adapter: Path, staging: Path, output: Path, model: str | None, other_base: bool
) -> dict[str, Any]:
    from paw.export import vllm
    from paw.models.adapter_files import base_model_for

    base, _ = base_model_for(model, str(adapter), other_base=other_base)
    done = vllm.write(adapter, staging, base)
    command = vllm.serve_command(base, output, done["max_lora_rank"])
    return {"format": "vllm", "source": str(adapter), "base": base, **done, "serve": command, "files": {}}


def _uses_dora(adapter: Path) -> bool:
    return bool(json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get("use_dora"))


def _kind(adapter: Path) -> str:
    from paw.models.adapter_files import adapter_type

    return "DoRA" if _uses_dora(adapter) else str(adapter_type(adapter))


def _prompt_spec(merged_dir: Path) -> dict[str, Any]:
    """How the adapter was prompted in training (``paw_prompt.json``); plain text for an adapter without one."""
    from paw.models.chat import PROMPT_SPEC_FILE

    spec_file = merged_dir / PROMPT_SPEC_FILE
    if spec_file.is_file():
        return json.loads(spec_file.read_text(encoding="utf-8"))
    return {"prompt_template": "text", "stop_tokens": []}
