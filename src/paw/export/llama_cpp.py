"""llama.cpp's own converters (``convert_hf_to_gguf.py``, ``convert_lora_to_gguf.py`` and the ``gguf-py`` and
``conversion`` packages they import), taken from the same pinned ``llama-cpp-python`` source distribution that
``paw fetch-tokenizers`` reads (never built, never a converter of paw's own), extracted once into paw's cache and
run in a subprocess.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from paw.errors import PawError
from paw.models.real_tokenizers import checked_sdist, table
from paw.utils.cache import cache_dir

PARTS = ("convert_hf_to_gguf.py", "convert_lora_to_gguf.py", "conversion/", "gguf-py/")
OUTTYPES = (
    "f32",
    "f16",
    "bf16",
    "q8_0",
)  # what convert_hf_to_gguf.py writes itself (others need llama-quantize)


def converters_dir(sdist: Path | None = None) -> Path:
    """The extracted converters, from ``sdist`` or paw's cached download of the pinned archive."""
    src = table()["source"]
    target = cache_dir() / "llama.cpp" / src["version"]
    if (target / PARTS[0]).is_file():
        return target
    archive = checked_sdist(sdist, None)
    prefix = f"{src['filename'].removesuffix('.tar.gz')}/vendor/llama.cpp/"
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".extract-") as tmp:
        staging = Path(tmp) / "llama.cpp"
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                relative = member.name.removeprefix(prefix)
                wanted = member.name.startswith(prefix) and relative.startswith(PARTS)
                if not wanted or not member.isfile() or ".." in Path(relative).parts:
                    continue
                out = staging / relative
                out.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(member) as data, open(out, "wb") as dest:
                    shutil.copyfileobj(data, dest)
        if not (staging / PARTS[0]).is_file():
            raise PawError(f"{archive}: llama.cpp's {PARTS[0]} is not in the archive")
        staging.rename(target)
    return target


def _run(script: str, args: list[str], what: str) -> None:
    """Run one converter; its last error line becomes the PawError."""
    command = [sys.executable, str(converters_dir() / script), *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=converters_dir())
    if done.returncode != 0:
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        reason = next(
            (line for line in reversed(lines) if "Error" in line), lines[-1] if lines else ""
        ).strip()
        if (
            "pre-tokenizer was not recognized" in reason
        ):  # llama.cpp knows tokenizers by a hash of their output
            reason += " (llama.cpp converts the tokenizers of published model families only)"
        raise PawError(f"llama.cpp's {script} could not convert {what}: {reason}")


def model_to_gguf(model_dir: Path, outfile: Path, outtype: str) -> Path:
    """A whole Hugging Face model directory (weights, config, tokenizer, chat template) as one GGUF file."""
    _run(
        "convert_hf_to_gguf.py",
        [str(model_dir), "--outtype", outtype, "--outfile", str(outfile)],
        str(model_dir),
    )
    return outfile


def lora_to_gguf(adapter_dir: Path, base_dir: Path, outfile: Path, outtype: str) -> Path:
    """A LoRA adapter alone as a GGUF LoRA (llama.cpp's ``--lora``, Ollama's ``ADAPTER``), against its base."""
    args = [str(adapter_dir), "--base", str(base_dir), "--outtype", outtype, "--outfile", str(outfile)]
    _run("convert_lora_to_gguf.py", args, str(adapter_dir))
    return outfile
