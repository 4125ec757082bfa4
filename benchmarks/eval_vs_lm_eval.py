"""paw eval vs lm-evaluation-harness: same model, same data, same batch size; items/s of each and the ratio.

    .venv/bin/python benchmarks/eval_vs_lm_eval.py [--n 200] [--hidden 256 --layers 4] [--batch-size 16]

The model is a randomly initialised Qwen2-shaped model (paw-tiny/qwen2's tokenizer, wider and deeper), built
once into $PAW_CACHE_DIR. Data: the real benchmark files in ../shared/data when present (ARC-Easy,
ARC-Challenge, HellaSwag, PIQA, WinoGrande), else paw's synthetic rows in the same schemas. Both tools are timed
after the model is loaded, from task set-up to metrics. Metrics must be identical; the script fails otherwise.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import platform
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


def bench_model(hidden: int, layers: int) -> Path:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from paw.models.tiny import cache_dir, tiny_model_dir

    target = cache_dir() / "bench" / f"qwen2-h{hidden}-l{layers}"
    if (target / "config.json").is_file():
        return target
    tiny = tiny_model_dir("paw-tiny/qwen2")
    base = AutoConfig.from_pretrained(tiny)
    spec = {k: v for k, v in base.to_dict().items() if k not in ("layer_types", "head_dim")}
    spec.update(
        {
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "intermediate_size": 4 * hidden,
            "num_attention_heads": max(4, hidden // 64),
            "num_key_value_heads": max(2, hidden // 128),
        }
    )
    config = type(base)(**spec)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(target)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(target)
    return target


def task_files(n: int, workdir: Path) -> tuple[dict[str, str], str]:
    from paw.data.synthetic_mc import generate_mc

    files, source = {}, "real (../shared/data)"
    for task, path in REAL.items():
        if path.is_file():
            lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()][:n]
            rows = [
                json.loads(line) if line.lstrip().startswith('{"') else ast.literal_eval(line)
                for line in lines
            ]
            for row in rows:  # lm-eval's piqa reads `label`; the PAW copy calls it `answer`
                if task == "piqa" and "label" not in row:
                    row["label"] = row.pop("answer")
        else:
            rows, source = generate_mc(task, n, seed=1), "synthetic"
        out = workdir / f"{task}.jsonl"
        out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        files[task] = str(out)
    return files, source


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="documents per task")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--tasks", default="arc_easy,arc_challenge,hellaswag,piqa,winogrande")
    args = parser.parse_args()
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from paw.eval.lm_eval_backend import local_task_yaml
    from paw.eval.runner import EvalOptions, run_task
    from paw.eval.tasks import get_task
    from paw.models.loaded import load_for_eval

    tasks = args.tasks.split(",")
    model_dir = bench_model(args.hidden, args.layers)
    with tempfile.TemporaryDirectory() as tmp:
        files, source = task_files(args.n, Path(tmp))
        loaded = load_for_eval(str(model_dir), None, dtype="fp32")
        n_params = sum(p.numel() for p in loaded.model.parameters())
        paw_results, paw_seconds = {}, {}
        for task in tasks:
            start = time.perf_counter()
            result = run_task(
                loaded.model,
                loaded.tokenizer,
                get_task(task),
                files[task],
                EvalOptions(batch_size=args.batch_size),
            )
            paw_seconds[task] = time.perf_counter() - start
            paw_results[task] = result.metrics
        del loaded

        names = {task: local_task_yaml(task, files[task], Path(tmp)) for task in tasks}
        lm = HFLM(pretrained=str(model_dir), batch_size=args.batch_size, dtype="float32", device="cpu")
        manager = TaskManager(include_path=tmp)
        lm_results, lm_seconds = {}, {}
        for task in tasks:
            start = time.perf_counter()
            out = lm_eval.simple_evaluate(
                model=lm, tasks=[names[task]], task_manager=manager, verbosity="ERROR"
            )
            lm_seconds[task] = time.perf_counter() - start
            lm_results[task] = out["results"][names[task]]

    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; model: Qwen2-shaped {n_params / 1e6:.1f}M params "
        f"(hidden {args.hidden}, {args.layers} layers), fp32; data: {source}, {args.n} docs/task; "
        f"batch size {args.batch_size}"
    )
    print("| task | paw items/s | lm-eval items/s | speed-up | acc paw / lm-eval | acc_norm paw / lm-eval |")
    print("|---|---|---|---|---|---|")
    mismatches = []
    total_paw = total_lm = 0.0
    for task in tasks:
        n = args.n
        ours, theirs = paw_results[task], lm_results[task]
        total_paw += paw_seconds[task]
        total_lm += lm_seconds[task]
        accs = f"{ours['acc']:.4f} / {theirs['acc,none']:.4f}"
        norms = (
            f"{ours['acc_norm']:.4f} / {theirs['acc_norm,none']:.4f}"
            if "acc_norm,none" in theirs and "acc_norm" in ours
            else "n/a"
        )
        if ours["acc"] != theirs["acc,none"] or (
            "acc_norm,none" in theirs and ours.get("acc_norm") != theirs["acc_norm,none"]
        ):
            mismatches.append(task)
        print(
            f"| {task} | {n / paw_seconds[task]:.1f} | {n / lm_seconds[task]:.1f} | "
            f"{lm_seconds[task] / paw_seconds[task]:.2f}x | {accs} | {norms} |"
        )
    n_all = args.n * len(tasks)
    print(f"| all | {n_all / total_paw:.1f} | {n_all / total_lm:.1f} | {total_lm / total_paw:.2f}x | | |")
    if mismatches:
        raise SystemExit(f"metrics differ from lm-eval on: {', '.join(mismatches)}")


if __name__ == "__main__":
    main()
