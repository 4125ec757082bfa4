"""paw eval vs lm-evaluation-harness on GSM8K generation: same model, rows, few-shot examples, batch size and dtype;
items/s, the ratio, and whether the greedy outputs are identical.

    .venv/bin/python benchmarks/gsm8k_vs_lm_eval.py --model paw-shape/qwen2.5-0.5b [--n 50] [--shots 5] \
        [--batch-size 16] [--max-new-tokens 256] [--json out.json]

Rows: the first ``--n`` of ../shared/data/native/original/gsm8k_test.jsonl; few-shot examples: both tools draw
them (lm-eval's rule, seed 1234) from the next 400 rows, given to each as the training split. Each tool runs in
its own process (model load timed apart). lm-eval's own gsm8k YAML (prompt, stop sequences, both answer filters)
runs on the local files; ``--max-new-tokens`` caps both (lm-eval's ``max_gen_toks``, paw's task setting).
The script exits non-zero when the outputs or the exact-match figures differ.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_vs_lm_eval import machine  # noqa: E402

GSM8K = Path(__file__).resolve().parents[2] / "shared" / "data" / "native" / "original" / "gsm8k_test.jsonl"
METRICS = ("exact_match,strict-match", "exact_match,flexible-extract")
FEWSHOT_POOL = 400


def write_files(n: int, workdir: Path) -> tuple[Path, Path]:
    """The scored rows and, from the rows after them, the few-shot pool."""
    lines = [line for line in GSM8K.read_text(encoding="utf-8").splitlines() if line.strip()]
    test, train = workdir / "gsm8k.jsonl", workdir / "gsm8k_train.jsonl"
    test.write_text("\n".join(lines[:n]) + "\n", encoding="utf-8")
    train.write_text("\n".join(lines[n : n + FEWSHOT_POOL]) + "\n", encoding="utf-8")
    return test, train


def worker(
    tool: str, model_dir: str, files: tuple[str, str], args: argparse.Namespace, workdir: Path
) -> dict:
    """Score gsm8k with one tool in this process: seconds after load, metrics, outputs, peak memory."""
    import torch

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    test, train = files
    start = time.perf_counter()
    if tool == "paw":
        from dataclasses import replace

        from paw.eval.runner import EvalOptions, run_task
        from paw.eval.tasks import get_task
        from paw.models.loaded import load_for_eval

        loaded = load_for_eval(model_dir, None, dtype=args.dtype)
        loaded_at = time.perf_counter()
        task = get_task("gsm8k")
        task = replace(task, generation={**task.generation, "max_new_tokens": args.max_new_tokens})
        options = EvalOptions(
            batch_size=int(args.batch_size),
            num_fewshot=args.shots,
            fewshot_files={"gsm8k": train},
            log_samples=True,
        )
        result = run_task(loaded.model, loaded.tokenizer, task, test, options)
        metrics = {k: result.metrics[k] for k in METRICS}
        outputs = [s["output"] for s in result.samples]
    else:
        import lm_eval
        import yaml
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        from paw.eval.lm_eval_backend import local_task_yaml

        name = local_task_yaml("gsm8k", test, workdir, train)
        spec_file = workdir / f"{name}.yaml"
        spec = yaml.safe_load(spec_file.read_text())
        until = ["Question:", "</s>", "<|im_end|>"]  # gsm8k.yaml's, with the cap on new tokens added
        spec["generation_kwargs"] = {"until": until, "do_sample": False, "max_gen_toks": args.max_new_tokens}
        spec_file.write_text(yaml.safe_dump(spec))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {"fp32": "float32", "bf16": "bfloat16"}[args.dtype]
        lm = HFLM(
            pretrained=model_dir,
            batch_size=int(args.batch_size),
            dtype=dtype,
            device=device,
        )
        loaded_at = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=[name],
            task_manager=TaskManager(include_path=str(workdir)),
            num_fewshot=args.shots,
            log_samples=True,
            verbosity="ERROR",
        )
        found = out["results"][name]
        metrics = {k: found[k] for k in METRICS}
        # one sample per doc and filter; the raw generation is the same under both filters
        samples = sorted(
            (s for s in out["samples"][name] if s["filter"] == "strict-match"), key=lambda s: s["doc_id"]
        )
        outputs = [s["resps"][0][0] for s in samples]
    done = time.perf_counter()
    return {
        "seconds": done - loaded_at,
        "load_seconds": loaded_at - start,
        "metrics": metrics,
        "outputs": outputs,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    }


def compare_outputs(model_dir: str, ours: list[str], theirs: list[str]) -> tuple[int, list[int]]:
    """How many outputs are identical, and paw's output lengths in tokens (retokenized), sorted."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    same = sum(a == b for a, b in zip(ours, theirs, strict=True))
    return same, sorted(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in ours)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="paw-shape/qwen2.5-0.5b", help="any model paw resolves")
    parser.add_argument("--n", type=int, default=50, help="rows scored")
    parser.add_argument("--shots", type=int, default=5, help="few-shot examples (lm-eval's gsm8k YAML: 5)")
    parser.add_argument("--batch-size", default="16", help="both tools'")
    parser.add_argument("--max-new-tokens", type=int, default=256, help="both tools' generation cap")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="both tools' weights")
    parser.add_argument("--json", type=Path, help="also write the results here (machine-readable)")
    parser.add_argument("--worker", choices=["paw", "lm-eval"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--files", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.model_dir, tuple(args.files), args, Path(args.out).parent)
        Path(args.out).write_text(json.dumps(result))
        return

    from paw.models.resolve import resolve_model

    model_dir = resolve_model(args.model).location
    config = json.loads((Path(model_dir) / "config.json").read_text())
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(args.n, Path(tmp))
        for tool in ("paw", "lm-eval"):
            out = Path(tmp) / f"{tool}.json"
            common = ["--batch-size", args.batch_size, "--dtype", args.dtype, "--shots", str(args.shots)]
            command = [
                sys.executable, __file__, "--worker", tool, "--model-dir", model_dir, "--out", str(out),
                "--files", *map(str, files), "--max-new-tokens", str(args.max_new_tokens), *common,
            ]  # fmt: skip
            subprocess.run(command, check=True)
            results[tool] = json.loads(out.read_text())
            shown = {k: v for k, v in results[tool].items() if k != "outputs"}
            print(f"gsm8k {tool}: {shown}", file=sys.stderr, flush=True)

    where = machine()
    ours, theirs = results["paw"], results["lm-eval"]
    same, lengths = compare_outputs(model_dir, ours["outputs"], theirs["outputs"])
    print(
        f"machine: {where}; model: {args.model} ({config['model_type']}, hidden {config['hidden_size']}, "
        f"{config['num_hidden_layers']} layers), {args.dtype}; gsm8k, {args.n} rows, {args.shots}-shot, batch "
        f"{args.batch_size}, at most {args.max_new_tokens} new tokens; each tool in its own process"
    )
    print("| tool | items/s | seconds | strict EM | flexible EM | peak RSS MB | mean output chars |")
    print("|---|---|---|---|---|---|---|")
    for tool, r in results.items():
        chars = sum(len(o) for o in r["outputs"]) / max(1, len(r["outputs"]))
        print(
            f"| {tool} | {args.n / r['seconds']:.3f} | {r['seconds']:.1f} | {r['metrics'][METRICS[0]]:.4f} | "
            f"{r['metrics'][METRICS[1]]:.4f} | {r['peak_rss_mb']:.0f} | {chars:.0f} |"
        )
    print(f"speed-up {theirs['seconds'] / ours['seconds']:.2f}x; identical outputs: {same}/{args.n}")
    stopped = sum(n < args.max_new_tokens for n in lengths)
    print(
        f"paw's answers: {stopped}/{args.n} stopped before the cap; tokens min / median / max "
        f"{lengths[0]} / {lengths[len(lengths) // 2]} / {lengths[-1]} (retokenized)"
    )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results}))
    if same != args.n or ours["metrics"] != theirs["metrics"]:
        raise SystemExit("paw's outputs or exact-match figures differ from lm-eval's")


if __name__ == "__main__":
    main()
