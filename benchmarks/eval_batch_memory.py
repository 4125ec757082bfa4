"""The largest evaluation batch that fits in a memory limit, paw vs lm-evaluation-harness, on the same model and data.

    .venv/bin/python benchmarks/eval_batch_memory.py --model paw-shape/qwen2.5-0.5b [--limit-gb 8] \
        [--tasks hellaswag,arc_easy] [--batch-sizes 8,16,32,64,128,256,512] [--json out.json]

For each task, tool and batch size (doubling, stopping at the first that does not fit), the tool scores the task's
first ``batch`` documents in its own process (``eval_vs_lm_eval.py``'s worker, same dtype), while this script reads
the process's resident memory from /proc every 50 ms and kills it once it passes the limit. A batch "fits" when the
run finishes under the limit; its peak RSS (the kernel's high-water mark, model load included) is printed either way.

The two tools count a batch differently: lm-eval's ``batch_size`` is requests (one per choice); paw's is rows, and
paw packs a document's choices into one row behind their shared context, so paw's batch of B rows holds about
B documents' requests (HellaSwag: 4 per document). paw also cuts a batch where the logits at its read positions would
pass 512 MiB (paw/eval/memory.py), so a large ``--batch-size`` runs as several smaller batches.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_vs_lm_eval import TORCH_DTYPES, task_files, worker_command  # noqa: E402


def rss_mb(pid: int) -> float:
    """A process's resident memory in MB (0 once it has gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def run_limited(command: list[str], limit_mb: float) -> tuple[bool, float, float]:
    """Run ``command``, killing it when its RSS passes ``limit_mb``: (finished under the limit, peak MB seen, s)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    peak = 0.0
    while process.poll() is None:
        peak = max(peak, rss_mb(process.pid))
        if peak > limit_mb:
            process.kill()
            process.wait()
            return False, peak, time.perf_counter() - start
        time.sleep(0.05)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{process.stderr.read()[-3000:]}")
    return True, peak, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="paw-shape/qwen2.5-0.5b", help="any model paw resolves")
    parser.add_argument("--limit-gb", type=float, default=8.0, help="resident memory limit (GiB)")
    parser.add_argument("--tasks", default="hellaswag,arc_easy")
    parser.add_argument("--batch-sizes", default="8,16,32,64,128,256,512")
    parser.add_argument("--tools", default="paw,lm-eval", help="which tools to run (comma-separated)")
    parser.add_argument("--dtype", choices=sorted(TORCH_DTYPES), default="fp32")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    from paw.models.resolve import resolve_model

    model_dir = resolve_model(args.model).location
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    limit_mb = args.limit_gb * 1024
    tasks = args.tasks.split(",")
    runs: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        files, source = task_files(tasks, max(sizes), Path(tmp))
        for task in tasks:
            rows = Path(files[task]).read_text(encoding="utf-8").splitlines()
            for tool in args.tools.split(","):
                for size in sizes:
                    data = Path(tmp) / f"{task}-{size}.jsonl"
                    data.write_text("".join(line + "\n" for line in rows[:size]), encoding="utf-8")
                    out = Path(tmp) / f"{tool}-{task}-{size}.json"
                    command = worker_command(tool, model_dir, task, str(data), str(size), args.dtype, out)
                    fits, peak, seconds = run_limited(command, limit_mb)
                    if fits:
                        peak = max(peak, json.loads(out.read_text())["peak_rss_mb"])
                    run = {
                        "task": task,
                        "tool": tool,
                        "batch": size,
                        "fits": fits,
                        "peak_mb": peak,
                        "s": seconds,
                    }
                    runs.append(run)
                    print(json.dumps(run), file=sys.stderr, flush=True)
                    if not fits:
                        break

    print(
        f"model {args.model}, {args.dtype}; data: {source}; limit {args.limit_gb:g} GiB RSS; docs = batch size"
    )
    print("| task | tool | largest batch that fits | its peak RSS MB | first that does not |")
    print("|---|---|---|---|---|")
    for task in tasks:
        for tool in args.tools.split(","):
            mine = [r for r in runs if r["task"] == task and r["tool"] == tool]
            fit = [r for r in mine if r["fits"]]
            over = [r for r in mine if not r["fits"]]
            best = f"{fit[-1]['batch']}" if fit else "none"
            peak = f"{fit[-1]['peak_mb']:.0f}" if fit else "-"
            first_over = (
                f"{over[0]['batch']} (killed at {over[0]['peak_mb']:.0f} MB)" if over else f"> {sizes[-1]}"
            )
            print(f"| {task} | {tool} | {best} | {peak} | {first_over} |")
    if args.json:
        args.json.write_text(json.dumps({"model": args.model, "limit_gb": args.limit_gb, "runs": runs}))


if __name__ == "__main__":
    main()
