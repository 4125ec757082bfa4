"""paw eval vs lm-evaluation-harness's ``generate_until`` on an instruction-format commonsense task (``cs_*``): same
model, rows, prompts, batch size and dtype; items/s, the ratio, and whether the greedy outputs are identical.

    .venv/bin/python benchmarks/cs_generation_vs_lm_eval.py --build-model [--base paw-zoo/qwen2-m] [--steps 200]
    .venv/bin/python benchmarks/cs_generation_vs_lm_eval.py [--model DIR] [--task cs_arc_c] [--n 100] \
        [--batch-size 16] [--json out.json]

A model that answers and stops: ``--build-model`` trains a LoRA on a zoo model (``paw zoo build``) with
``paw train`` on ARC-Challenge's training split in the instruction format (../shared/data/commonsense, Alpaca
prompt, "the correct answer is answerN"), and merges it with ``paw merge`` into
``benchmarks/results/models/<base>-cs-arc`` (git-ignored; resumable). The comparison scores the first ``--n``
rows of the task's test file: paw through ``run_task`` (its prompt, its stop at the end-of-sequence token, its
32-token cap); lm-eval through a generated task YAML whose documents carry paw's prompt text, with
``generate_until`` (stop: the end-of-sequence token, which lm-eval adds itself; the same cap). Each tool runs in
its own process (model load timed apart). Exits non-zero when the outputs differ.
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
from gsm8k_vs_lm_eval import compare_outputs  # noqa: E402
from gsm8k_zoo_model import train_and_merge  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
COMMONSENSE = ROOT.parent / "shared" / "data" / "commonsense"
TEST_FILES = {
    "cs_arc_c": "ARC-Challenge-test.json",
    "cs_arc_e": "ARC-Easy-test.json",
    "cs_boolq": "boolq-test.json",
    "cs_piqa": "piqa-test.json",
    "cs_siqa": "social_i_qa-test.json",
    "cs_obqa": "openbookqa-test.json",
    "cs_winogrande": "winogrande-test.json",
}


def build_model(args: argparse.Namespace) -> Path:
    """Train (or resume) the LoRA on ARC-Challenge's training split and merge it; returns the merged model."""
    data = {
        "train_file": str(COMMONSENSE / "ARC-Challenge-train.json"),
        "format": "alpaca",
        "prompt_template": "alpaca",
        "max_length": 256,
        "val_ratio": 0.0,
    }
    return train_and_merge(args.base, args.steps, data, default_model(args.base))


def default_model(base: str) -> Path:
    return ROOT / "benchmarks" / "results" / "models" / f"{base.split('/')[-1]}-cs-arc"


def worker(tool: str, model_dir: str, task_name: str, test: str, args: argparse.Namespace) -> dict:
    """Score the task with one tool in this process: seconds after load, outputs, peak memory."""
    import torch

    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    if tool == "paw":
        from paw.eval.runner import EvalOptions, run_task
        from paw.eval.tasks import get_task
        from paw.models.loaded import load_for_eval

        loaded = load_for_eval(model_dir, None, dtype=args.dtype)
        loaded_at = time.perf_counter()
        options = EvalOptions(batch_size=int(args.batch_size), log_samples=True)
        result = run_task(loaded.model, loaded.tokenizer, get_task(task_name), test, options)
        outputs = [s["output"] for s in result.samples]
        accuracy = result.metrics["acc"]
    else:
        import lm_eval
        import yaml
        from lm_eval.models.huggingface import HFLM
        from lm_eval.tasks import TaskManager

        from paw.eval.tasks import get_task

        workdir = Path(test).parent
        task = get_task(task_name)
        rows = [json.loads(line) for line in Path(test).read_text(encoding="utf-8").splitlines()]
        prompts = workdir / "prompts.jsonl"
        prompts.write_text(
            "".join(
                json.dumps({"prompt": task.doc(r, str(i)).prompt, "answer": r["answer"]}) + "\n"
                for i, r in enumerate(rows)
            )
        )
        name = f"paw_{task_name}_generation"
        spec = {
            "task": name,
            "dataset_path": "json",
            "dataset_kwargs": {"data_files": {"test": str(prompts)}},
            "test_split": "test",
            "output_type": "generate_until",
            "doc_to_text": "{{prompt}}",
            "doc_to_target": "{{answer}}",
            "target_delimiter": "",
            "generation_kwargs": {
                "until": [],
                "do_sample": False,
                "max_gen_toks": task.generation["max_new_tokens"],
            },
            "metric_list": [{"metric": "exact_match"}],
        }
        (workdir / f"{name}.yaml").write_text(yaml.safe_dump(spec))
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = {"fp32": "float32", "bf16": "bfloat16"}[args.dtype]
        lm = HFLM(pretrained=model_dir, batch_size=int(args.batch_size), dtype=dtype, device=device)
        loaded_at = time.perf_counter()
        out = lm_eval.simple_evaluate(
            model=lm,
            tasks=[name],
            task_manager=TaskManager(include_path=str(workdir)),
            log_samples=True,
            verbosity="ERROR",
        )
        samples = sorted(out["samples"][name], key=lambda s: s["doc_id"])
        outputs = [s["resps"][0][0] for s in samples]
        accuracy = None
    done = time.perf_counter()
    return {
        "seconds": done - loaded_at,
        "load_seconds": loaded_at - start,
        "outputs": outputs,
        "acc": accuracy,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--build-model", action="store_true", help="train and merge the answering model, then stop"
    )
    parser.add_argument("--base", default="paw-zoo/qwen2-m", help="--build-model's base (a zoo model)")
    parser.add_argument("--steps", type=int, default=200, help="--build-model's training steps")
    parser.add_argument("--model", help="any model paw resolves (default: the model --build-model writes)")
    parser.add_argument("--task", choices=sorted(TEST_FILES), default="cs_arc_c")
    parser.add_argument("--n", type=int, default=100, help="rows scored")
    parser.add_argument("--batch-size", default="16", help="both tools'")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32", help="both tools' weights")
    parser.add_argument("--json", type=Path, help="also write the results here (machine-readable)")
    parser.add_argument("--worker", choices=["paw", "lm-eval"], help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--test", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(args.worker, args.model_dir, args.task, args.test, args)
        Path(args.out).write_text(json.dumps(result))
        return
    if args.build_model:
        print(f"model: {build_model(args)}")
        return

    from paw.models.resolve import resolve_model

    model = args.model or str(default_model(args.base))
    model_dir = resolve_model(model).location
    config = json.loads((Path(model_dir) / "config.json").read_text())
    rows = json.loads((COMMONSENSE / TEST_FILES[args.task]).read_text(encoding="utf-8"))[: args.n]
    results = {}
    for tool in ("paw", "lm-eval"):
        with tempfile.TemporaryDirectory() as tmp:
            test, out = Path(tmp) / "test.jsonl", Path(tmp) / "out.json"
            test.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
            command = [
                sys.executable, __file__, "--worker", tool, "--model-dir", model_dir, "--task", args.task,
                "--test", str(test), "--out", str(out), "--batch-size", args.batch_size, "--dtype", args.dtype,
            ]  # fmt: skip
            subprocess.run(command, check=True)
            results[tool] = json.loads(out.read_text())
        shown = {k: v for k, v in results[tool].items() if k != "outputs"}
        print(f"{args.task} {tool}: {shown}", file=sys.stderr, flush=True)

    where = machine()
    ours, theirs = results["paw"], results["lm-eval"]
    same, lengths = compare_outputs(model_dir, ours["outputs"], theirs["outputs"])
    print(
        f"machine: {where}; model: {model} ({config['model_type']}, hidden {config['hidden_size']}, "
        f"{config['num_hidden_layers']} layers), {args.dtype}; {args.task}, {args.n} rows, batch {args.batch_size}; "
        "each tool in its own process"
    )
    print("| tool | items/s | seconds | peak RSS MB | mean output chars |")
    print("|---|---|---|---|---|")
    for tool, r in results.items():
        chars = sum(len(o) for o in r["outputs"]) / max(1, len(r["outputs"]))
        print(
            f"| {tool} | {args.n / r['seconds']:.2f} | {r['seconds']:.1f} | {r['peak_rss_mb']:.0f} | {chars:.0f} |"
        )
    print(
        f"speed-up {theirs['seconds'] / ours['seconds']:.2f}x; identical outputs: {same}/{args.n}; paw's accuracy "
        f"{ours['acc']:.3f}; output tokens min / median / max {lengths[0]} / {lengths[len(lengths) // 2]} / "
        f"{lengths[-1]} (retokenized)"
    )
    if args.json:
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)}, "results": results}))
    if same != args.n:
        raise SystemExit("paw's outputs differ from lm-eval's")


if __name__ == "__main__":
    main()
