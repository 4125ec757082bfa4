"""The environment the GPU check carries to a GPU machine that has no network: wheels, tokenizers, data.

    .venv/bin/python benchmarks/gpu_env.py download   # here (package index reachable): fill .gpu/
    .venv/bin/python benchmarks/gpu_env.py check      # is .gpu/ complete for the device's Python 3.12?

The device's image (this workplace's 'cuda' image, package list read on 2026-11-17, see IMAGE) already holds torch
(2.11, CUDA 13: far too large to carry, so the check runs against it), tokenizers, accelerate and most of the
scientific stack; it lacks trl, datasets, pydantic, lm-eval and bitsandbytes. `download` fetches, for CPython 3.12
on manylinux x86_64, the wheels of paw's pinned versions (requirements/constraints.txt) of every package in CARRY,
builds wheels here for the four that publish only source (DeepSpeed without its ops), trims bitsandbytes' wheel to the CUDA 13
libraries the image's torch loads (43 MB -> ~4 MB: the 64 MiB carry budget), and copies the Qwen2 tokenizer the
stand-ins need plus the benchmark data found in ../shared/data. `check` verifies what the device will need without
a network: every wheel installable on cp312/x86_64, and every requirement of every carried wheel (markers evaluated
for Python 3.12 on Linux x86_64) met by a carried wheel or by the image.
"""

from __future__ import annotations

import argparse
import email.parser
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRY_DIR = REPO / ".gpu"  # git-ignored; named in the device call's `carry`
WHEELS = CARRY_DIR / "wheels"
BUDGET_MB = 64.0  # the device tool's limit on the working tree plus carried paths (MiB)

# Carried at paw's pinned version (constraints.txt): missing from the image, or pinned by paw where the image's
# version differs in a way that matters (transformers 5.17 there; peft and regex versions unknown there).
CARRY = """
transformers peft trl datasets dill multiprocess fsspec pydantic pydantic_core annotated-types typing-inspection
typing_extensions regex lm_eval evaluate sqlitedict pytablewriter DataProperty mbstrdecoder typepy tabledata tcolorpy
pathvalidate chardet rouge_score nltk defusedxml word2number more-itertools
""".split()
# Not in constraints.txt (optional extras): QLoRA's kernels, DeepSpeed (ZeRO-2 smoke) and its one missing need.
EXTRA_PINS = {"bitsandbytes": "0.50.2", "deepspeed": "0.19.8", "hjson": "3.1.0"}
# No wheel on the index: built here. DeepSpeed's wheel is built with DS_BUILD_OPS=0 (pure Python; its CUDA ops
# compile just in time there, with the image's nvcc) against this venv's torch (--no-build-isolation).
SOURCE_ONLY = {"rouge_score", "sqlitedict", "word2number", "deepspeed"}
BNB_KEEP = ("libbitsandbytes_cpu.so", "libbitsandbytes_cuda130.so", "libbitsandbytes_cuda132.so")

# The device image's packages ('cuda' image; DEVELOPERS' device notes, KINDS.md), with the versions read there.
IMAGE_VERSIONS = {
    "accelerate": "1.15.0",
    "huggingface-hub": "1.33.0",
    "numpy": "2.5.2",
    "safetensors": "0.8.0",
    "sentencepiece": "0.2.2",
    "tokenizers": "0.23.2",
    "torch": "2.11.0",
    "transformers": "5.17.0",
    "triton": "3.6.0",
}
IMAGE = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs certifi charset-normalizer
click cloudpickle colorama contourpy cycler einops filelock fonttools frozenlist fsspec h11 hf-xet httpcore httpx
huggingface-hub idna jinja2 joblib kiwisolver markdown markdown-it-py markupsafe matplotlib mdurl mpmath msgpack
multidict networkx ninja numpy nvidia-ml-py packaging pandas pillow pip pluggy portalocker propcache protobuf psutil
py-cpuinfo pyarrow pygments pyparsing pytest python-dateutil pyyaml regex requests rich sacrebleu safetensors
scikit-learn scipy sentencepiece setuptools shellingham six sympy tabulate tensorboard tensorboard-data-server
threadpoolctl tokenizers torch tqdm transformers triton typer typing-extensions urllib3 werkzeug wheel xxhash yarl
""".split()
DEVICE_ENV = {
    "python_version": "3.12",
    "python_full_version": "3.12.3",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "extra": "",
}
PLATFORMS = [f"manylinux_2_{n}_x86_64" for n in (17, 24, 27, 28, 31, 34, 35)] + [
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
]
SHARED = REPO.parent / "shared" / "data"
DATA = {  # carried benchmark text, when this checkout has ../shared/data (else the check uses synthetic rows)
    "arc_easy.jsonl": SHARED / "native" / "arc-easy_test.jsonl",
    "hellaswag.jsonl": SHARED / "native" / "original" / "hellaswag_val_subset1000.jsonl",
    "arc_challenge_train.json": SHARED / "commonsense" / "ARC-Challenge-train.json",
}
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "paw_tokenizer.json")


def normalize(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


def pins() -> dict[str, str]:
    """name -> version for every carried package: paw's constraints file, plus the extras' own pins."""
    found = {}
    for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            found[normalize(name)] = version.strip()
    wanted = {normalize(n): found.get(normalize(n)) for n in CARRY}
    missing = [n for n, v in wanted.items() if v is None]
    if missing:
        raise SystemExit(f"requirements/constraints.txt pins none of: {', '.join(missing)}")
    return {**wanted, **{normalize(n): v for n, v in EXTRA_PINS.items()}}


def trim_bitsandbytes(wheel: Path) -> Path:
    """Rewrite bitsandbytes' wheel without the CUDA 11/12, ROCm and XPU libraries (RECORD kept consistent)."""
    trimmed = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(trimmed, "w", zipfile.ZIP_DEFLATED) as dst:
        for item in src.infolist():
            base = item.filename.rsplit("/", 1)[-1]
            if base.startswith("libbitsandbytes_") and base not in BNB_KEEP:
                continue
            data = src.read(item)
            if item.filename.endswith(".dist-info/RECORD"):
                keep = [
                    line
                    for line in data.decode().splitlines()
                    if not (
                        line.split(",", 1)[0].rsplit("/", 1)[-1].startswith("libbitsandbytes_")
                        and line.split(",", 1)[0].rsplit("/", 1)[-1] not in BNB_KEEP
                    )
                ]
                data = ("\n".join(keep) + "\n").encode()
            dst.writestr(item, data)
    trimmed.replace(wheel)
    return wheel


def download() -> None:
    WHEELS.mkdir(parents=True, exist_ok=True)
    wanted = pins()
    for stale in WHEELS.glob("*.whl"):  # one version of each: two would stop the install there
        name, version = wheel_name_version(stale)
        if wanted.get(name) != version:
            stale.unlink()
    have = {wheel_name_version(w)[0] for w in WHEELS.glob("*.whl")}
    binary = [
        f"{n}=={v}" for n, v in wanted.items() if n not in have and n not in map(normalize, SOURCE_ONLY)
    ]
    source = [f"{n}=={v}" for n, v in wanted.items() if n not in have and n in map(normalize, SOURCE_ONLY)]
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    if binary:
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        subprocess.run(
            [*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", "3.12"]
            + ["--implementation", "cp", *platforms, "-d", str(WHEELS), *binary],
            check=True,
        )
    for spec in source:
        subprocess.run(
            [*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(WHEELS), spec],
            env={**os.environ, "DS_BUILD_OPS": "0"},
            check=True,
        )
    for wheel in WHEELS.glob("bitsandbytes-*.whl"):
        with zipfile.ZipFile(wheel) as z:
            if any(
                n.rsplit("/", 1)[-1].startswith("libbitsandbytes_") and n.rsplit("/", 1)[-1] not in BNB_KEEP
                for n in z.namelist()
            ):
                trim_bitsandbytes(wheel)
    copy_tokenizers()
    copy_data()
    print(summary())


def copy_tokenizers() -> None:
    from paw.models.real_tokenizers import tokenizer_dir

    source = tokenizer_dir("qwen2")  # a PawError naming `paw fetch-tokenizers` when not fetched yet
    target = CARRY_DIR / "cache" / "tokenizers" / "qwen2"
    target.mkdir(parents=True, exist_ok=True)
    for name in TOKENIZER_FILES:
        shutil.copy2(source / name, target / name)


def copy_data() -> None:
    target = CARRY_DIR / "data"
    target.mkdir(parents=True, exist_ok=True)
    for name, source in DATA.items():
        if source.is_file():
            shutil.copy2(source, target / name)


def size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20 if path.exists() else 0.0


def tree_mb() -> float:
    """Tracked and untracked-not-ignored files: what travels besides the carried paths."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    return (
        sum((REPO / p.decode()).stat().st_size for p in listed if p and (REPO / p.decode()).is_file()) / 2**20
    )


def summary() -> str:
    carried, tree = size_mb(CARRY_DIR), tree_mb()
    return (
        f"{len(list(WHEELS.glob('*.whl')))} wheels; .gpu/ {carried:.1f} MiB + working tree {tree:.1f} MiB = "
        f"{carried + tree:.1f} of the device's {BUDGET_MB:.0f} MiB"
    )


def wheel_name_version(wheel: Path) -> tuple[str, str]:
    from packaging.utils import parse_wheel_filename

    name, version, _, _ = parse_wheel_filename(wheel.name)
    return normalize(name), str(version)


def installable(wheel: Path) -> bool:
    """Does any tag of this wheel fit CPython 3.12 on manylinux x86_64 (glibc <= 2.39)?"""
    from packaging.utils import parse_wheel_filename

    for tag in parse_wheel_filename(wheel.name)[3]:
        python_ok = tag.interpreter in ("py3", "cp312", "py312")
        abi_ok = tag.abi in ("none", "abi3", "cp312")
        platform = tag.platform
        platform_ok = platform == "any" or (
            platform.endswith("_x86_64")
            and (
                platform in ("manylinux1_x86_64", "manylinux2010_x86_64", "manylinux2014_x86_64")
                or (platform.startswith("manylinux_2_") and int(platform.split("_")[2]) <= 39)
            )
        )
        if python_ok and abi_ok and platform_ok:
            return True
    return False


def requirements(wheel: Path) -> list:
    from packaging.requirements import Requirement

    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        message = email.parser.Parser().parsestr(z.read(meta).decode())
    out = []
    for text in message.get_all("Requires-Dist") or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(DEVICE_ENV):
            out.append(req)
    return out


def problems(wheels_dir: Path = WHEELS) -> list[str]:
    """Everything that would stop the carried set from installing and importing on the device; [] when complete."""
    wheels = sorted(wheels_dir.glob("*.whl"))
    if not wheels:
        return [f"no wheels in {wheels_dir}: run `make gpu-wheels` (or benchmarks/gpu_env.py download)"]
    found: list[str] = []
    carried: dict[str, str] = {}
    for wheel in wheels:
        name, version = wheel_name_version(wheel)
        if name in carried:
            found.append(f"two versions of {name} ({carried[name]}, {version}): the install would stop")
        carried[name] = version
        if not installable(wheel):
            found.append(f"{wheel.name} does not install on CPython 3.12 / manylinux x86_64")
    image = {normalize(n) for n in IMAGE}
    image_versions = {normalize(n): v for n, v in IMAGE_VERSIONS.items()}
    for wanted in pins():
        if wanted not in carried:
            found.append(f"{wanted} is not carried")
    for wheel in wheels:
        for req in requirements(wheel):
            name = normalize(req.name)
            version = carried.get(name) or image_versions.get(name)
            if version is not None:
                if not req.specifier.contains(version, prereleases=True):
                    where = "carried" if name in carried else "in the image"
                    found.append(f"{wheel.name} needs {req}, {where}: {version}")
            elif name not in image:
                found.append(f"{wheel.name} needs {req}: neither carried nor in the image")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["download", "check"])
    args = parser.parse_args()
    if args.action == "download":
        download()
    found = problems()
    for line in found:
        print(f"missing: {line}", file=sys.stderr)
    if found:
        raise SystemExit(2)
    print(f"wheel set complete for CPython 3.12 / x86_64: {summary()}")


if __name__ == "__main__":
    main()
