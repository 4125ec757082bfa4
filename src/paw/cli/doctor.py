"""``paw doctor``: environment checks, each ✅/❌ with a hint, written to ``validation_report.json``.

Fast and torch-free: versions come from package metadata, GPUs from ``nvidia-smi``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from paw.cli import consoles
from paw.experiment.metadata import PACKAGES
from paw.utils.io import atomic_write_json

REQUIRED = (*(p for p in PACKAGES if p != "paw"), "pydantic", "typer", "rich", "pyyaml", "tensorboard")
OPTIONAL = ("bitsandbytes", "flash-attn", "deepspeed", "lm-eval", "wandb", "liger-kernel")
MIN_FREE_DISK_GB = 10


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    hint: str = ""
    required: bool = True


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _gpus() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def run_checks() -> list[Check]:
    """Every check, in the order the report lists them: software, then the machine, then paw's own files."""
    return [*_package_checks(), _cuda_check(), *_machine_checks(), *_paw_checks()]


def _package_checks() -> list[Check]:
    checks = [
        Check("python", sys.version_info >= (3, 10), sys.version.split()[0], "paw needs Python 3.10 or newer")
    ]
    for name in REQUIRED:
        version = _version(name)
        checks.append(
            Check(
                name,
                version is not None,
                version or "not installed",
                f"run 'make setup' (or pip install {name})",
            )
        )
    for name in OPTIONAL:
        version = _version(name)
        checks.append(
            Check(
                name, version is not None, version or "not installed", f"optional: pip install {name}", False
            )
        )
    return checks


def _cuda_check() -> Check:
    gpus, cpu_build = _gpus(), "+cpu" in (_version("torch") or "")
    if not gpus:
        hint = "training runs on CPU (slow); QLoRA/flash-attention need CUDA"
    else:
        hint = "install a CUDA build of torch" if cpu_build else ""
    shown = ("; ".join(gpus) if gpus else "no NVIDIA GPU found") + (
        " (torch is a CPU build)" if cpu_build else ""
    )
    return Check("cuda", bool(gpus) and not cpu_build, shown, hint, required=False)


def _machine_checks() -> list[Check]:
    free_gb = shutil.disk_usage(Path.cwd()).free / 2**30
    checks = [
        Check(
            "disk",
            free_gb >= MIN_FREE_DISK_GB,
            f"{free_gb:.1f} GB free in {Path.cwd()}",
            f"free at least {MIN_FREE_DISK_GB} GB for checkpoints and models",
        )
    ]
    try:
        mem_gb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
        checks.append(Check("memory", mem_gb >= 8, f"{mem_gb:.1f} GB RAM", "8 GB or more is recommended"))
    except (ValueError, OSError, AttributeError):
        pass
    return checks


def _paw_checks() -> list[Check]:
    from paw.models.real_tokenizers import is_fetched, tokenizer_names

    cache = Path(os.environ.get("PAW_CACHE_DIR") or Path.home() / ".cache" / "paw")
    probe = cache if cache.exists() else cache.parent
    fetched = [n for n in tokenizer_names() if is_fetched(n)]
    token = any(os.environ.get(k) for k in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"))
    return [
        Check("cache", os.access(probe, os.W_OK), f"{cache}", "set PAW_CACHE_DIR to a writable dir"),
        Check(
            "real vocabs",
            len(fetched) == len(tokenizer_names()),
            f"tokenizers for paw-shape/*: {', '.join(fetched) or 'none'} fetched",
            "run 'paw fetch-tokenizers' (or 'make tokenizers') once",
            False,
        ),
        Check(
            "hf_token",
            True,
            "set in the environment" if token else "not set",
            "" if token else "gated models (Llama, Gemma) need HF_TOKEN in the environment",
            False,
        ),
    ]


def run_doctor(output: Path) -> int:
    checks = run_checks()
    console = consoles.console(stderr=False)
    for check in checks:
        mark = "✅" if check.ok else ("❌" if check.required else "➖")
        hint = f"  → {check.hint}" if check.hint and not check.ok else ""
        console.print(f"{mark} {check.name:<13} {check.detail}{hint}")
    failed = [c.name for c in checks if c.required and not c.ok]
    atomic_write_json(output, {"ok": not failed, "failed": failed, "checks": [asdict(c) for c in checks]})
    console.print(f"report: {output}")
    return 1 if failed else 0
