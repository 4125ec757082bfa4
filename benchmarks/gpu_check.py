"""Every figure and behaviour of paw that needs CUDA, in one run on one GPU for a short lease (aim: <= 8 minutes).

    make gpu-wheels                                  # here, with the package index: fill the carried .gpu/
    .venv/bin/python benchmarks/gpu_check.py --dry-run   # the wheel set is complete; the plan and its time estimates
    python3 benchmarks/gpu_check.py --out DIR        # on the GPU machine (offline): results in DIR

On the GPU machine the image's own python3 runs it: the carried wheels (.gpu/wheels, see gpu_env.py) are installed
into a private folder put first on PYTHONPATH when the image lacks any of paw's needs, paw runs from src/, and the
stand-ins build from the carried tokenizer into .gpu/cache. Each check runs in its own process with its own time
limit (cut to what is left of ``--budget``); a failed or timed-out check is recorded and the run goes on. Written
to ``--out``: gpu_check.json (everything, machine-readable), gpu_check.md (the tables for RESULTS.md) and
gpu_check.log (every check's output). This orchestrator uses the standard library only.

Checks, in order (a short ``--budget`` drops the last; ``--dry-run`` prints them with estimates): the device and
versions, its measured bf16 matmul peak (for MFU), the host cost of a kernel launch and a bare LoRA step;
``pytest -m gpu`` (tests/gpu, four at a time: QLoRA 4/8-bit, bf16/fp16, gradient checkpointing, paged 8-bit
AdamW, resume after SIGKILL, eval batch auto); then per shape (Qwen2.5-0.5B, 1.5B, full depth) LoRA training
throughput and peak memory in bf16 (TRL defaults, paw padded, paw packed; QLoRA 4-bit at 1.5B) and paw eval vs
lm-evaluation-harness (HF backend) on ARC-Easy and HellaSwag with paw's batch size 'auto' (bf16, plus one fp32
parity run at 0.5B); a DeepSpeed ZeRO-2 single-process smoke. The stand-ins are built in the background while the
untimed checks run, and nothing runs beside a timed check.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CARRIED = REPO / ".gpu"
SITE = Path("/tmp/paw-gpu-site")
NEEDS = ("pydantic", "trl", "datasets", "peft", "lm_eval", "typer", "rich")  # paw cannot run without these
VERSIONS = (
    "torch transformers peft trl accelerate datasets tokenizers safetensors pydantic lm_eval bitsandbytes "
    "deepspeed huggingface_hub numpy"
).split()
TRAIN_RUNS = "TRL SFTTrainer, padding;paw, padded;paw, packed (data.packing)"


@dataclass
class Check:
    name: str
    estimate_s: int  # on one H100/H200, start-up and stand-in builds included
    timeout_s: int
    command: list[str]
    result_file: str | None = None  # a JSON the command writes (under the run's work dir)
    env: dict[str, str] = field(default_factory=dict)
    timed: bool = False  # a measurement: nothing else may run beside it


def plan(work: Path, batch: int = 64, eval_n: int = 300, pytest_args: str = "") -> list[Check]:
    """The checks, most needed first (a short budget drops the last); estimates as measured on an H200 lease
    (2026-12-04), where every process spends ~15-25 s on imports, CUDA start-up and loading."""
    py = sys.executable
    data = CARRIED / "data"
    pytest = [py, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-rfEs", "--durations=0"]
    if importlib.util.find_spec("xdist"):
        pytest += ["-n", "4"]  # GPU-light tests: four at once
    if importlib.util.find_spec("pytest_timeout"):
        pytest += [
            "--timeout",
            "150",
        ]  # a hung test fails alone, with its stack, and the summary still prints
    checks = [
        Check("environment", 30, 90, [py, __file__, "--probe", str(work / "probe.json")], "probe.json"),
        Check("pytest -m gpu", 110, 200, pytest + (shlex.split(pytest_args) or ["tests/gpu"])),
    ]
    shapes = (
        ("0.5b", 8, TRAIN_RUNS, 115, 75),
        ("1.5b", 6, "paw, padded;paw, padded, QLoRA 4-bit;TRL SFTTrainer, padding", 170, 90),
    )
    for size, steps, runs, train_s, eval_s in shapes:
        model = f"paw-shape/qwen2.5-{size}"
        command = [
            py,
            str(REPO / "benchmarks" / "train_throughput.py"),
            "--model",
            model,
            "--weights",
            "bf16",
        ]
        command += ["--precision", "bf16", "--steps", str(steps), "--batch", str(batch), "--runs", runs]
        command += ["--json", str(work / f"train-{size}.json")]
        if (data / "arc_challenge_train.json").is_file():
            command += ["--data", str(data / "arc_challenge_train.json")]
        checks.append(Check(f"train qwen2.5-{size}", train_s, 240, command, f"train-{size}.json", timed=True))
        for dtype, n, name in (("bf16", eval_n, "eval"), ("fp32", 100, "eval parity fp32")):
            if dtype == "fp32" and size != "0.5b":
                continue  # one parity check: do the numbers equal lm-eval's where rounding cannot hide a bug?
            command = [py, str(REPO / "benchmarks" / "eval_vs_lm_eval.py"), "--model", model, "--n", str(n)]
            command += ["--tasks", "arc_easy,hellaswag", "--dtype", dtype, "--batch-size", "auto"]
            result = f"{name}-{size}.json".replace(" ", "-")
            command += ["--lm-eval-batch-size", "64", "--json", str(work / result)]
            if (data / "arc_easy.jsonl").is_file():
                command += ["--data-dir", str(data)]
            estimate = eval_s if dtype == "bf16" else 45
            checks.append(Check(f"{name} qwen2.5-{size}", estimate, 200, command, result, timed=True))
    launcher = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "MASTER_ADDR": "127.0.0.1"}
    checks.append(
        Check(
            "deepspeed zero-2",
            60,
            150,
            [py, __file__, "--deepspeed-smoke", str(work / "deepspeed")],
            env={**launcher, "MASTER_PORT": "29517"},
            timed=True,
        )
    )
    dpo = [py, str(REPO / "benchmarks" / "dpo_throughput.py"), "--json", str(work / "dpo-0.5b.json")]
    dpo += "--model paw-shape/qwen2.5-0.5b --weights bf16 --precision bf16 --steps 6 --batch 4".split()
    # last: DPO tokens/s, TRL's DPOTrainer defaults vs paw (whose head replaces TRL's Triton one on CUDA too)
    checks.append(Check("dpo qwen2.5-0.5b", 100, 200, dpo, "dpo-0.5b.json", timed=True))
    return checks


# ---- probes run as checks (in the carried environment) -------------------------------------------------------


def probe(out: Path) -> None:
    """The device, every relevant version, each needed import, and the measured bf16 matmul peak (TFLOP/s)."""
    from importlib import metadata

    import torch

    info: dict = {"python": sys.version.split()[0], "cuda_available": torch.cuda.is_available()}
    for name in VERSIONS:
        try:
            info.setdefault("versions", {})[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info.setdefault("versions", {})[name] = None
    failed = {}
    for module in ("paw", "trl", "datasets", "peft", "lm_eval", "bitsandbytes", "deepspeed"):
        try:
            __import__(module)
        except Exception as err:  # recorded, not fatal: later checks say what it costs them
            failed[module] = f"{type(err).__name__}: {err}"[:300]
    info["import_errors"] = failed
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        info.update(
            device=props.name,
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            cuda=torch.version.cuda,
            bf16_matmul_tflops=round(matmul_tflops(torch), 1),
            launch_us=round(launch_us(torch), 1),
            lora_step_ms=lora_step_ms(torch),
        )
    out.write_text(json.dumps(info, indent=1))
    print(json.dumps(info, indent=1))


def matmul_tflops(torch, n: int = 8192, reps: int = 10) -> float:
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e12


def launch_us(torch, n: int = 2000) -> float:
    """Host-side cost of one tiny kernel launch: what bounds a step whose kernels are small."""
    x = torch.zeros(8, device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(n):
        x.add_(1)
    torch.cuda.synchronize()
    return (time.perf_counter() - start) / n * 1e6


def lora_step_ms(torch) -> dict[str, float]:
    """One LoRA (r 16, all-linear) step at Qwen2.5-0.5B's full shape in bf16 without a Trainer (forward with the
    model's loss, backward, AdamW): milliseconds per step at 16 and 64 rows of 128 tokens, the floor under any
    framework's step."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from paw.models.shape import stand_in_config, stand_in_tokenizer

    config = stand_in_config("qwen2.5-0.5b", 24, stand_in_tokenizer("qwen2.5-0.5b"))
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    timings = {}
    for rows in (16, 64):
        ids = torch.randint(0, config.vocab_size - 1, (rows, 128), device="cuda")
        for step in range(5):
            if step == 2:  # after two warm-up steps
                torch.cuda.synchronize()
                start = time.perf_counter()
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
        torch.cuda.synchronize()
        timings[f"{rows}x128"] = round((time.perf_counter() - start) / 3 * 1000, 1)
    return timings


def deepspeed_smoke(work: Path) -> None:
    """paw train with configs/deepspeed/zero2.json in one process (the launcher's environment set by the caller)."""
    import yaml

    from paw.data.synthetic import generate_alpaca, write_jsonl

    work.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(generate_alpaca(200, 0), work / "train.jsonl")
    config = {
        "model": {"name_or_path": "paw-shape/qwen2.5-0.5b@2", "dtype": "bf16"},
        "peft": {"r": 8, "alpha": 16, "target_modules": "all-linear"},
        "data": {"train_file": str(data), "max_length": 128},
        "training": {
            "max_steps": 6,
            "per_device_train_batch_size": 4,
            "logging_steps": 1,
            "deepspeed": str(REPO / "configs" / "deepspeed" / "zero2.json"),
        },
        "tracking": {"backends": []},
        "experiment": {"root": str(work / "exps")},
    }
    path = work / "zero2.yaml"
    path.write_text(yaml.safe_dump(config))
    done = subprocess.run([sys.executable, "-m", "paw", "train", str(path), "--name", "zero2"], timeout=600)
    report = work / "exps" / "zero2" / "results" / "training_report.json"
    if done.returncode != 0 or not report.is_file():
        raise SystemExit(f"paw train with DeepSpeed ZeRO-2 failed (exit {done.returncode})")
    steps = json.loads(report.read_text())["steps"]
    print(f"ZeRO-2: {len(steps)} steps, losses {[round(s['loss'], 3) for s in steps]}")


# ---- the run -----------------------------------------------------------------------------------------------


def environment() -> dict[str, str]:
    """Children's environment: carried wheels first (installed when the image lacks a need), paw from src/."""
    env = dict(os.environ)
    paths = [str(REPO / "src"), str(REPO)]
    wheels = sorted((CARRIED / "wheels").glob("*.whl"))
    missing = [m for m in NEEDS if importlib.util.find_spec(m) is None]
    if wheels and (missing or os.environ.get("PAW_GPU_CARRIED") == "1"):
        if not (SITE / ".installed").is_file():
            subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile"]
                + ["--no-cache-dir", "--upgrade", "--target", str(SITE), *map(str, wheels)],
                check=True,
            )
            (SITE / ".installed").write_text("\n".join(w.name for w in wheels))
        paths.insert(0, str(SITE))
    elif missing:
        raise SystemExit(
            f"this Python lacks {', '.join(missing)} and no wheels are carried: run `make gpu-wheels`"
        )
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if (CARRIED / "cache").is_dir():
        env["PAW_CACHE_DIR"] = str(CARRIED / "cache")
    env.update(
        HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1"
    )
    return env


def run(checks: list[Check], budget: float, out: Path, work: Path) -> dict:
    started = time.monotonic()
    env = environment()
    record: dict = {"budget_s": budget, "setup_s": round(time.monotonic() - started, 1), "checks": []}
    log = (out / "gpu_check.log").open("w")
    prebuild = start_prebuild(checks, env, work)
    for check in checks:
        entry: dict = {
            "name": check.name,
            "command": shlex.join(check.command),
            "estimate_s": check.estimate_s,
        }
        if check.timed and prebuild is not None:  # no build may run beside a measurement
            waited = wait_for(prebuild, budget - (time.monotonic() - started))
            record["prebuild"] = {"returncode": prebuild.returncode, "waited_s": waited}
            log.write((work / "prebuild.log").read_text() if (work / "prebuild.log").is_file() else "")
            prebuild = None
        left = budget - (time.monotonic() - started)
        if left < min(30, check.estimate_s):
            entry.update(status="skipped", reason=f"{max(left, 0):.0f} s of the budget left")
        else:
            entry.update(run_check(check, {**env, **check.env}, min(check.timeout_s, left), log))
            if check.result_file and (work / check.result_file).is_file():
                entry["data"] = json.loads((work / check.result_file).read_text())
        record["checks"].append(entry)
        print(f"{check.name}: {entry['status']} {entry.get('seconds', '')}", file=sys.stderr, flush=True)
        write(record, out)
    if prebuild is not None:
        stop(prebuild)
    record["total_s"] = round(time.monotonic() - started, 1)
    write(record, out)
    log.close()
    return record


def run_check(check: Check, env: dict[str, str], limit: float, log) -> dict:
    """Run one check in its own process group, output to ``log``; stopped (with its children) at ``limit``."""
    log.write(f"\n===== {check.name} (limit {limit:.0f} s)\n$ {shlex.join(check.command)}\n")
    log.flush()
    start = time.monotonic()
    proc = subprocess.Popen(
        check.command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        code = proc.wait(timeout=limit)
        result = {"status": "passed" if code == 0 else "failed", "returncode": code}
    except subprocess.TimeoutExpired:
        result = {"status": "timeout", "reason": f"stopped at {limit:.0f} s"}
    stop(proc)  # nothing a check started may run on beside the next one
    return {**result, "seconds": round(time.monotonic() - start, 1)}


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def start_prebuild(checks: list[Check], env: dict[str, str], work: Path) -> subprocess.Popen | None:
    """Build the stand-ins the timed checks load (CPU work: random weights, written once to the cache) while the
    untimed checks run, instead of inside a measured check's time."""
    models = stand_ins(checks)
    if not models:
        return None
    work.mkdir(parents=True, exist_ok=True)
    with (work / "prebuild.log").open("w") as out:
        return subprocess.Popen(
            [sys.executable, __file__, "--prebuild", *models],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stand_ins(checks: list[Check]) -> list[str]:
    """The models the timed checks load (each named after ``--model``)."""
    named = {
        c.command[i + 1] for c in checks if c.timed for i, a in enumerate(c.command[:-1]) if a == "--model"
    }
    return sorted(named)


def wait_for(proc: subprocess.Popen, seconds: float) -> float:
    start = time.monotonic()
    try:
        proc.wait(timeout=max(seconds, 1))
    except subprocess.TimeoutExpired:
        stop(proc)
    return round(time.monotonic() - start, 1)


def prebuild(models: list[str]) -> None:
    from paw.models.resolve import resolve_model

    for name in models:
        start = time.monotonic()
        location = resolve_model(name).location
        print(f"prebuilt {name} in {time.monotonic() - start:.1f} s: {location}", flush=True)


def write(record: dict, out: Path) -> None:
    (out / "gpu_check.json").write_text(json.dumps(record, indent=1))
    (out / "gpu_check.md").write_text(markdown(record))


def markdown(record: dict) -> str:
    checks = {c["name"]: c for c in record["checks"]}
    probe_data = checks.get("environment", {}).get("data", {})
    peak = probe_data.get("bf16_matmul_tflops")
    lines = [f"# GPU check ({probe_data.get('device', 'no device read')})", ""]
    if probe_data:
        versions = ", ".join(f"{k} {v}" for k, v in probe_data.get("versions", {}).items() if v)
        lines += [
            f"- device: {probe_data.get('device')} ({probe_data.get('memory_gib')} GiB, compute "
            f"{probe_data.get('capability')}), CUDA {probe_data.get('cuda')}, Python {probe_data.get('python')}",
            f"- measured bf16 matmul peak (8192^3): {peak} TFLOP/s; host cost of one kernel launch: "
            f"{probe_data.get('launch_us')} µs; bare LoRA step at the 0.5B shape (ms, rows x tokens): "
            f"{probe_data.get('lora_step_ms')}",
            f"- versions: {versions}",
            f"- import errors: {probe_data.get('import_errors') or 'none'}",
        ]
    lines += ["", "| check | status | seconds | estimate |", "|---|---|---|---|"]
    for c in record["checks"]:
        lines.append(
            f"| {c['name']} | {c['status']} {c.get('reason', '')} | {c.get('seconds', '-')} | {c['estimate_s']} |"
        )
    for name, c in checks.items():
        data = c.get("data")
        if name.startswith("train") and data:
            lines += ["", f"## {name}", "", data["header"], ""]
            lines += [
                "| run | real tokens/s | vs TRL defaults | MFU | peak CUDA MB |",
                "|---|---|---|---|---|",
            ]
            runs = data["runs"]
            base = runs.get("TRL SFTTrainer, padding", {}).get("tokens_per_s")
            for run_name, r in runs.items():
                if "error" in r:
                    lines.append(f"| {run_name} | failed: {r['error']} | | | |")
                    continue
                flops = 4 * data["matmul_parameters"] * r["tokens_per_s"]  # LoRA: forward + input gradients
                mfu = f"{100 * flops / (peak * 1e12):.1f}%" if peak else "n/a"
                ratio = f"{r['tokens_per_s'] / base:.2f}x" if base else "n/a"
                lines.append(
                    f"| {run_name} | {r['tokens_per_s']:.0f} | {ratio} | {mfu} | {r.get('peak_cuda_mb')} |"
                )
        if name.startswith("eval") and data:
            lines += ["", f"## {name}", "", data["header"], ""]
            lines += [
                "| task | paw items/s | lm-eval items/s | speed-up | acc paw / lm-eval | acc_norm paw / lm-eval "
                "| peak CUDA MB paw / lm-eval |",
                "|---|---|---|---|---|---|---|",
            ]
            for task, ours in data["results"]["paw"].items():
                theirs = data["results"]["lm-eval"].get(task)
                if not theirs:
                    continue
                cells = [
                    f"{ours['metrics'].get(k, float('nan')):.4f} / {theirs['metrics'].get(k, float('nan')):.4f}"
                    for k in ("acc", "acc_norm")
                ]
                lines.append(
                    f"| {task} | {data['n'] / ours['seconds']:.1f} | {data['n'] / theirs['seconds']:.1f} | "
                    f"{theirs['seconds'] / ours['seconds']:.2f}x | {cells[0]} | {cells[1]} | "
                    f"{ours.get('peak_cuda_mb') or 0:.0f} / {theirs.get('peak_cuda_mb') or 0:.0f} |"
                )
            if data.get("mismatches"):
                lines.append(f"\nmetrics differ from lm-eval on: {', '.join(data['mismatches'])}")
    return "\n".join(lines) + "\n"


def dry_run(checks: list[Check]) -> int:
    sys.path.insert(0, str(REPO / "benchmarks"))
    import gpu_env

    found = gpu_env.problems()
    print("plan (one H100/H200; estimates include start-up):")
    for c in checks:
        print(f"  {c.estimate_s:>4} s  (limit {c.timeout_s:>3} s)  {c.name}")
    total = sum(c.estimate_s for c in checks)
    print(f"  {total:>4} s  in all (budget {BUDGET_S} s; each check's limit is cut to what is left)")
    for line in found:
        print(f"missing: {line}", file=sys.stderr)
    if found:
        print("the carried wheel set is incomplete: run `make gpu-wheels`", file=sys.stderr)
        return 2
    print(f"carried: {gpu_env.summary()}; complete for CPython 3.12 / x86_64")
    return 0


BUDGET_S = 480


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "gpu_check_results", help="where the results go")
    parser.add_argument("--budget", type=float, default=BUDGET_S, help="seconds for all checks together")
    parser.add_argument("--only", help="comma-separated check names (or their first word, e.g. train,eval)")
    parser.add_argument(
        "--batch", type=int, default=64, help="training micro-batch (rows) of the throughput runs"
    )
    parser.add_argument("--eval-n", type=int, default=300, help="documents per task in the eval comparison")
    parser.add_argument("--pytest-args", default="", help="instead of tests/gpu, e.g. '-k qlora tests/gpu'")
    parser.add_argument("--dry-run", action="store_true", help="check the carried wheels and print the plan")
    parser.add_argument("--probe", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--deepspeed-smoke", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--prebuild", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        return probe(args.probe)
    if args.deepspeed_smoke:
        return deepspeed_smoke(args.deepspeed_smoke)
    if args.prebuild:
        return prebuild(args.prebuild)
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"paw-gpu-check-{os.getpid()}"
    checks = plan(work, args.batch, args.eval_n, args.pytest_args)
    if args.only:
        wanted = {w.strip() for w in args.only.split(",")}
        checks = [c for c in checks if c.name in wanted or c.name.split()[0] in wanted]
    if args.dry_run:
        raise SystemExit(dry_run(checks))
    work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    record = run(checks, args.budget, args.out, work)
    failed = [c["name"] for c in record["checks"] if c["status"] != "passed"]
    print(markdown(record))
    if failed:
        raise SystemExit(f"not passed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
