"""paw eval vs lm-evaluation-harness: same model, same data, same batch size and dtype; items/s and the ratio.

    .venv/bin/python benchmarks/eval_vs_lm_eval.py --model paw-shape/qwen2.5-0.5b [--n 300] [--batch-size 16|auto] \
        [--dtype fp32|bf16] [--tasks arc_easy,hellaswag] [--data-dir DIR] [--json out.json] [--work]

`--model` is any model paw resolves; the real-shape stand-ins (`paw-shape/<name>[@<layers>]`, after
`paw fetch-tokenizers`) are what the figures in RESULTS.md use. Each tool scores each task in its own process
(model load timed apart), the two alternating task by task so that a busy machine slows both alike. Data: the
real benchmark files in ../shared/data when present (ARC-Easy, ARC-Challenge, HellaSwag, PIQA, WinoGrande), else
paw's synthetic rows in the same schemas. On the GPU when there is one (peak CUDA memory reported too). Metrics
must be identical; the script exits non-zero otherwise.

`--work` also records every forward each tool runs (rows x padded length, and the positions its vocabulary
projection runs on) and prints the multiply-accumulates each tool asks of the model and their ratio: the speed-up
that running the same arithmetic at the same rate would give. The shapes do not depend on depth, so
`--model paw-shape/qwen2.5-0.5b@1 --work-layers 24` counts the full-depth work in a fraction of the time. Beside
them, the least any exact scorer must run on the same requests: every distinct token path once (a trie over all
requests' inputs, across documents) and the vocabulary projection at every distinct read position, no padding, no
attention arithmetic counted.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = {
    "arc_easy": SHARED / "native" / "arc-easy_test.jsonl",
    "arc_challenge": SHARED / "native" / "arc-challenge_test.jsonl",
    "hellaswag": SHARED / "native" / "original" / "hellaswag_val_subset1000.jsonl",
    "piqa": SHARED / "native" / "piqa_validation.jsonl",
    "winogrande": SHARED / "native" / "winogrande_validation.jsonl",
}


def task_files(
    tasks: list[str], n: int, workdir: Path, data_dir: Path | None = None
) -> tuple[dict[str, str], str]:
    """The first ``n`` rows of each task's real file (``data_dir/<task>.jsonl`` or ../shared/data), else paw's
    synthetic rows in the task's schema; and which tasks read which."""
    from paw.data.synthetic_mc import generate_mc

    files, real, synthetic = {}, [], []
    for task in tasks:
        path = data_dir / f"{task}.jsonl" if data_dir is not None else REAL[task]
        if path.is_file():
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
            rows = [
                json.loads(line) if line.lstrip().startswith('{"') else ast.literal_eval(line)
                for line in lines
            ]
            for row in rows:  # lm-eval's piqa reads `label`; the PAW copy calls it `answer`
                if task == "piqa" and "label" not in row:
                    row["label"] = row.pop("answer")
            real.append(task)
        else:
            rows = generate_mc(task, n, seed=1)
            synthetic.append(task)
        out = workdir / f"{task}.jsonl"
        out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        files[task] = str(out)
    parts = [f"real ({data_dir or '../shared/data'}): {', '.join(real)}"] if real else []
    parts += [f"synthetic: {', '.join(synthetic)}"] if synthetic else []
    return files, "; ".join(parts)


def record_forwards(model, shapes: list) -> None:
    """Append (rows, padded length, positions the head runs on) for every forward of ``model``."""
    import torch

    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        keep = kwargs.get("logits_to_keep")
        rows, length = ids.shape
        if keep is None or (isinstance(keep, int) and keep == 0):
            head = rows * length
        elif isinstance(keep, int):
            head = rows * keep
        elif keep.dtype == torch.bool:
            head = int(keep.sum())
        else:
            head = rows * len(keep)
        shapes.append((rows, length, head))

    model.register_forward_pre_hook(hook, with_kwargs=True)


def worker(
    tool: str,
    model_dir: str,
    task: str,
    data_file: str,
    batch_size: str,
    dtype: str,
    workdir: Path,
    work: bool = False,
) -> dict:
    """Score one task with one tool in this process; seconds after load, load seconds, metrics, peak memory, and
    with ``work`` the shape of every forward."""
    import torch

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    if tool == "paw":
        from paw.eval.runner import EvalOptions, run_task
        from paw.eval.tasks import get_task
        from paw.models.loaded import load_for_eval

        loaded = load_for_eval(model_dir, None, dtype=dtype)
        shapes: list = []
        if work:
            record_forwards(loaded.model, shapes)
        loaded_at = time.perf_counter()
        size = batch_size if batch_size == "auto" else int(batch_size)
        result = run_task(
            loaded.model, loaded.tokenizer, get_task(task), data_file, EvalOptions(batch_size=size)
        )
        metrics = {k: result.metrics[k] for k in ("acc", "acc_norm") if result.metrics.get(k) is not None}
    else:
        import lm_eval
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        from paw.eval.lm_eval_backend import local_task_yaml

        name = local_task_yaml(task, data_file, workdir)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        lm = HFLM(pretrained=model_dir, batch_size=batch_size, dtype=TORCH_DTYPES[dtype], device=device)
        shapes = []
        if work:
            record_forwards(lm.model, shapes)
        loaded_at = time.perf_counter()
        manager = TaskManager(include_path=str(workdir))
        out = lm_eval.simple_evaluate(model=lm, tasks=[name], task_manager=manager, verbosity="ERROR")
        found = out["results"][name]
        metrics = {k: found[f"{k},none"] for k in ("acc", "acc_norm") if f"{k},none" in found}
    done = time.perf_counter()
    return {
        "seconds": done - loaded_at,
        "load_seconds": loaded_at - start,
        "metrics": metrics,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "forwards": shapes,
    }


def macs(config: dict, forwards: list, layers: int | None = None) -> tuple[float, float]:
    """Multiply-accumulates of ``forwards`` on a decoder of ``config``'s shape (``layers`` deep when given): the
    linear layers on every position run, padding included; attention scores and mixing on rows x length^2 (what
    a masked dense kernel computes); the vocabulary projection where it runs. Returns (total, padded positions)."""
    text = config.get("text_config", config)
    attention_width = text["num_attention_heads"] * _head_dim(text)
    depth = layers or text["num_hidden_layers"]
    total = positions = 0.0
    for rows, length, head in forwards:
        positions += rows * length
        total += depth * (linear_macs(text) * rows * length + 2 * rows * length * length * attention_width)
        total += text["hidden_size"] * text["vocab_size"] * head
    return total, positions


def _head_dim(text: dict) -> int:
    return text.get("head_dim") or text["hidden_size"] // text["num_attention_heads"]


def linear_macs(text: dict) -> int:
    """One layer's weight multiply-accumulates per position: q/k/v/o projections and the gated MLP."""
    hidden, heads = text["hidden_size"], text["num_attention_heads"]
    kv = text.get("num_key_value_heads", heads) * _head_dim(text)
    return hidden * (2 * heads * _head_dim(text) + 2 * kv) + 3 * hidden * text["intermediate_size"]


TORCH_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}


def worker_command(
    tool: str,
    model_dir: str,
    task: str,
    data_file: str,
    batch_size: str,
    dtype: str,
    out: Path,
    work: bool = False,
) -> list[str]:
    """The command line that scores ``task`` with ``tool`` in its own process, writing the result to ``out``."""
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", tool, "--model-dir", model_dir]
    command += ["--tasks", task, "--data-file", data_file, "--batch-size", str(batch_size), "--dtype", dtype]
    return [*command, "--out", str(out)] + (["--work"] if work else [])


def run_worker(
    tool: str,
    model_dir: str,
    task: str,
    data_file: str,
    batch_size: str,
    dtype: str,
    workdir: Path,
    work: bool,
) -> dict:
    out = workdir / f"{tool}-{task}.json"
    command = worker_command(tool, model_dir, task, data_file, batch_size, dtype, out, work)
    subprocess.run(command, check=True)
    return json.loads(out.read_text())


def machine() -> str:
    """The GPU (with torch and CUDA versions) when there is one, else the CPU and its cores."""
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)}, torch {torch.__version__} (CUDA {torch.version.cuda})"
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}"
    )


def cuda(result: dict) -> str:
    return "-" if result.get("peak_cuda_mb") is None else f"{result['peak_cuda_mb']:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="paw-shape/qwen2.5-0.5b", help="any model paw resolves")
    parser.add_argument("--n", type=int, default=300, help="documents per task")
    parser.add_argument("--batch-size", default="16", help="paw's batch size, or 'auto'")
    parser.add_argument(
        "--lm-eval-batch-size", help="lm-eval's (default: --batch-size; 64 when that is 'auto')"
    )
    parser.add_argument("--dtype", choices=sorted(TORCH_DTYPES), default="fp32", help="both tools' weights")
    parser.add_argument("--data-dir", type=Path, help="<task>.jsonl files to read instead of ../shared/data")
    parser.add_argument("--json", type=Path, help="also write the results here (machine-readable)")
    parser.add_argument("--tasks", default="arc_easy,arc_challenge,hellaswag,piqa,winogrande")
    parser.add_argument("--work", action="store_true", help="also count each tool's arithmetic (see above)")
    parser.add_argument("--work-layers", type=int, help="count the work at this depth (default: the model's)")
    parser.add_argument("--worker", choices=["paw", "lm-eval"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--data-file", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(
            args.worker,
            args.model_dir,
            args.tasks,
            args.data_file,
            args.batch_size,
            args.dtype,
            Path(args.out).parent,
            args.work,
        )
        Path(args.out).write_text(json.dumps(result))
        return

    from paw.models.resolve import resolve_model

    tasks = args.tasks.split(",")
    model_dir = resolve_model(args.model).location
    config = json.loads((Path(model_dir) / "config.json").read_text())
    results: dict[str, dict[str, dict]] = {"paw": {}, "lm-eval": {}}
    with tempfile.TemporaryDirectory() as tmp:
        files, source = task_files(tasks, args.n, Path(tmp), args.data_dir)
        lm_batch = args.lm_eval_batch_size or ("64" if args.batch_size == "auto" else args.batch_size)
        for task in tasks:
            for tool, batch in (("paw", args.batch_size), ("lm-eval", lm_batch)):
                results[tool][task] = run_worker(
                    tool, model_dir, task, files[task], batch, args.dtype, Path(tmp), args.work
                )
                brief = {k: v for k, v in results[tool][task].items() if k != "forwards"}
                print(f"{task} {tool}: {brief}", file=sys.stderr, flush=True)
        minimum = {task: exact_minimum(model_dir, task, files[task]) for task in tasks} if args.work else {}

    where = machine()
    header = (
        f"machine: {where}; model: {args.model} ({config['model_type']}, hidden {config['hidden_size']}, "
        f"{config['num_hidden_layers']} layers, vocabulary {config['vocab_size']}), {args.dtype}; data: {source}, "
        f"{args.n} docs/task; batch size paw {args.batch_size}, lm-eval {lm_batch}; each tool in its own process "
        "per task"
    )
    print(header)
    print(
        "| task | paw items/s | lm-eval items/s | speed-up | acc paw / lm-eval | acc_norm paw / lm-eval "
        "| peak RSS MB paw / lm-eval | peak CUDA MB paw / lm-eval |"
    )
    print("|---|---|---|---|---|---|---|---|")
    mismatches = []
    total_paw = total_lm = 0.0
    for task in tasks:
        ours, theirs = results["paw"][task], results["lm-eval"][task]
        total_paw += ours["seconds"]
        total_lm += theirs["seconds"]
        cells = [
            f"{ours['metrics'][k]:.4f} / {theirs['metrics'][k]:.4f}" if k in theirs["metrics"] else "n/a"
            for k in ("acc", "acc_norm")
        ]
        if ours["metrics"] != theirs["metrics"]:
            mismatches.append(task)
        print(
            f"| {task} | {args.n / ours['seconds']:.2f} | {args.n / theirs['seconds']:.2f} | "
            f"{theirs['seconds'] / ours['seconds']:.2f}x | {cells[0]} | {cells[1]} | "
            f"{ours['peak_rss_mb']:.0f} / {theirs['peak_rss_mb']:.0f} | {cuda(ours)} / {cuda(theirs)} |"
        )
    n_all = args.n * len(tasks)
    print(f"| all | {n_all / total_paw:.2f} | {n_all / total_lm:.2f} | {total_lm / total_paw:.2f}x | | | | |")
    if args.work:
        print_work(tasks, results, config, args.work_layers, minimum)
    if args.json:
        args.json.write_text(
            json.dumps({"header": header, "n": args.n, "results": results, "mismatches": mismatches})
        )
    if mismatches:
        raise SystemExit(f"metrics differ from lm-eval on: {', '.join(mismatches)}")


def exact_minimum(model_dir: str, task: str, data_file: str) -> tuple[int, int]:
    """(distinct token paths, distinct read positions) over every request of ``task``'s file, tokenised as lm-eval
    (and paw) tokenise them: what an exact scorer cannot avoid running."""
    from transformers import AutoTokenizer

    from paw.eval.loglik import encode_pair, prefix_token_id
    from paw.eval.runner import EvalOptions, load_docs
    from paw.eval.tasks import get_task

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prefix = prefix_token_id(tokenizer)
    docs, _ = load_docs(get_task(task), data_file, EvalOptions())
    nodes: set[tuple[int, ...]] = set()
    reads: set[tuple[int, ...]] = set()
    for doc in docs:
        for context, continuation in doc.requests():
            ctx, cont = encode_pair(tokenizer, context, continuation, prefix)
            inp = (ctx + cont)[:-1]
            nodes.update(tuple(inp[: k + 1]) for k in range(len(inp)))
            reads.update(tuple(inp[: k + 1]) for k in range(len(inp) - len(cont), len(inp)))
    return len(nodes), len(reads)


def print_work(
    tasks: list[str], results: dict, config: dict, layers: int | None, minimum: dict[str, tuple[int, int]]
) -> None:
    text = config.get("text_config", config)
    depth = layers or text["num_hidden_layers"]
    hidden, vocab = text["hidden_size"], text["vocab_size"]
    print(f"\nArithmetic each tool asks of the model ({depth} layers; GMAC = 10^9 multiply-accumulates):")
    print(
        "| task | paw GMAC | lm-eval GMAC | work ratio | exact minimum GMAC (paths, reads) | lm-eval / minimum "
        "| paw positions run (padded) | lm-eval positions run |"
    )
    print("|---|---|---|---|---|---|---|---|")
    sums = [0.0, 0.0, 0.0]
    for task in tasks:
        (ours, ours_pos), (theirs, theirs_pos) = (
            macs(config, results[tool][task]["forwards"], layers) for tool in ("paw", "lm-eval")
        )
        paths, reads = minimum[task]
        least = depth * linear_macs(text) * paths + hidden * vocab * reads
        sums[0] += ours
        sums[1] += theirs
        sums[2] += least
        print(
            f"| {task} | {ours / 1e9:.0f} | {theirs / 1e9:.0f} | {theirs / ours:.2f}x | {least / 1e9:.0f} "
            f"({paths}, {reads}) | {theirs / least:.2f}x | {ours_pos:.0f} | {theirs_pos:.0f} |"
        )
    print(
        f"| all | {sums[0] / 1e9:.0f} | {sums[1] / 1e9:.0f} | {sums[1] / sums[0]:.2f}x | {sums[2] / 1e9:.0f} "
        f"| {sums[1] / sums[2]:.2f}x | | |"
    )


if __name__ == "__main__":
    main()
