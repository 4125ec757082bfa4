"""`paw demo --zoo`'s pipeline over zoo pairs: a transfer method, then a refine beside its same-budget control.

    .venv/bin/python benchmarks/transfer_zoo_pipeline.py [--pairs a:b,...] [--method align|align-fit|...]
        [--labels source|data] [--refine-steps 200] [--refine-examples 200] [--shuffled all|gain] [--unrelated]
        [--workdir DIR] [--json FILE]

Per pair, `paw pipeline paw:pipeline/quick_test.yaml` with the overrides `paw demo --zoo` uses (`paw/cli/demo.py`:
the HellaSwag-style synthetic task, one right ending per context; both LoRAs 400 steps, 3 seeds; `align` (or
`--method`) with proportional depth and the gate open; the refine stage, by default 200 steps on the source
adapter's greedy answers to 200 training prompts), each pipeline in its own process. The product computes
everything printed here (its `pipeline_results.json`): RR of the moved adapter and of the refined one (paired
bootstrap over questions, seeds pooled), the refined − control accuracy difference with its CI, the refine
guard's kept scale per seed (0: dropped, the refined run is the control), and the run the refine stage keeps per
seed by validation loss (the refined one only where its loss is below the control's) against the control.
`--shuffled` adds the shuffled-layer control: the source LoRA moved with the same method onto the target's layers
in reverse order, refined on the same answers with the same budget and guard, so a gain that any non-zero start
gives shows up there too (`--shuffled gain`: only where refined − control has a CI above 0); with
`--refine-steps 0` the reversed adapter is scored as moved, and its RR is printed beside the moved adapter's.
`--unrelated` adds the unrelated control: the source LoRA moved with the same options onto a freshly initialised
copy of the target, scored against that copy's base. With
`--workdir`, a second run reuses what a first finished there: the pipelines' steps (`paw pipeline --resume`), each
seed's shuffled refine and unrelated transfer.
Default pairs: every ordered pair of different zoo models.
Figures: benchmarks/RESULTS.md ("The pipeline's refine stage across the zoo", "Moving the adapter by fitting its
effect").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run_pair(pair: str, root: Path, extra: list[str]) -> dict:
    from paw.cli.demo import DEMO_CONFIG, zoo_overrides

    name = pair.replace(":", "_to_")
    command = [sys.executable, "-m", "paw", "pipeline", str(DEMO_CONFIG), "--name", name]
    command += [f"experiment.root={root}", *zoo_overrides(pair), *extra]
    if (
        root / name / "metadata.json"
    ).is_file():  # an earlier run in --workdir: its finished steps are reused
        command.append("--resume")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        return {"pair": pair, "error": done.stderr.strip().splitlines()[-1:]}
    results = json.loads((root / name / "results" / "pipeline_results.json").read_text())
    (task,) = results["tasks"].values()
    return {"pair": pair, "seconds": round(time.perf_counter() - started, 1), "exp": str(root / name), **task}


def _source_adapter(exp: Path, seed: int) -> Path:
    """The source LoRA the pipeline trained for ``seed`` (its step-2 record's adapter, relative to ``exp``)."""
    record = json.loads((exp / "steps" / f"2_train_source-seed{seed}.json").read_text())
    return exp / record["outputs"]["adapter"]


def _pooled(vectors: list[list[float]]) -> list[float]:
    """Per-question scores averaged over seeds."""
    return [sum(column) / len(column) for column in zip(*vectors, strict=True)]


def _scores(samples: Path, metric: str) -> list[float]:
    return [float(json.loads(line)[metric]) for line in samples.read_text().splitlines() if line.strip()]


def _shuffled_seed(config, exp: Path, seed: int, task: str, metric: str) -> tuple[list[float], float | None]:
    """One seed's shuffled-layer adapter, refined as the pipeline refines (without a refine stage: as moved): its
    per-question scores and the guard's kept scale (None without a refine). A finished one in
    ``exp/shuffled/seed<s>`` is read back; an unfinished one is redone."""
    from paw.pipeline.step_runners import transfer_options
    from paw.transfer.api import transfer
    from paw.transfer.refine import RefineOptions, refine_transferred

    out = exp / "shuffled" / f"seed{seed}"
    samples, report = out / "eval" / f"samples_{task}.jsonl", out / "adapter" / "transfer_report.json"
    finished = json.loads(report.read_text()) if samples.is_file() else {}
    r = config.transfer.refine
    if finished and (not r.steps or "refine" in finished):
        return _scores(samples, metric), finished["refine"]["start"]["scale"] if r.steps else None
    shutil.rmtree(out, ignore_errors=True)
    _, settings = config.refine_data()
    settings.pop("columns", None)  # the answers file is in paw's field names
    source = _source_adapter(exp, seed)
    answers = exp / "steps" / f"3_transfer-seed{seed}" / "adapter" / "refine" / "source_answers.jsonl"
    options = dataclasses.replace(transfer_options(config), depth="reversed")
    transfer(source, config.target.name_or_path, out / "adapter", config.source.name_or_path, options)
    if not r.steps:
        return _evaluate(config, task, out / "adapter", out / "eval", metric), None
    budget = RefineOptions(
        str(answers), r.examples, r.steps, r.learning_rate, seed=seed, data_settings=settings
    )
    done = refine_transferred(
        config.source.name_or_path, Path(source), out / "adapter", config.target.name_or_path, budget
    )
    scores = _evaluate(config, task, Path(done["transferred_init"]["adapter"]), out / "eval", metric)
    return scores, done["start"]["scale"]


def _evaluate(config, task: str, adapter: Path, out: Path, metric: str) -> list[float]:
    """The target with ``adapter`` on the pipeline's task: per-question scores (samples kept in ``out``)."""
    from paw.eval.api import evaluate
    from paw.eval.runner import EvalOptions

    evaluate(
        [task],
        model=config.target.name_or_path,
        adapter=str(adapter),
        data_files=config.eval.data_files,
        options=EvalOptions(log_samples=True),
        output=out,
    )
    return _scores(out / f"samples_{task}.jsonl", metric)


def shuffled_control(exp: Path, metric: str) -> dict:
    """Per seed, the source LoRA moved with the pipeline's method onto the target's layers in reverse order (the
    same adapter in the wrong place), then refined exactly as the pipeline refined the moved adapter (its answers
    file, budget, seed and data settings; the same guard): is the refine's gain the transfer's, or any non-zero
    start's? Without a refine stage, the reversed adapter's RR (against the target base and the target's own LoRA,
    as the moved adapter's): is the moved adapter's gain the layer correspondence's?"""
    from paw.config.loader import load_config
    from paw.config.pipeline_schema import PipelineConfig
    from paw.pipeline import stats
    from paw.pipeline.steps import seeds

    config = load_config(exp / "config.yaml", [], schema=PipelineConfig)
    (task,) = config.eval.tasks

    def step(name: str) -> list[float]:
        return _scores(exp / "steps" / name / f"samples_{task}.jsonl", metric)

    shuffled, scales = [], []
    for seed in seeds(config):
        scores, scale = _shuffled_seed(config, exp, seed, task, metric)
        shuffled.append(scores)
        scales.append(scale)
    p = config.pipeline
    pooled = _pooled(shuffled)
    row: dict = {"shuffled_value": round(stats.mean(pooled), 6)}
    if not config.transfer.refine.steps:
        lora = _pooled([step(f"7_eval_target_lora-seed{seed}") for seed in seeds(config)])
        moved = _pooled([step(f"5_eval_transferred-seed{seed}") for seed in seeds(config)])
        base = step("4_eval_target_base")
        return {
            **row,
            "shuffled_recovery_ratio": stats.recovery_ratio(base, lora, pooled, p.bootstrap, p.confidence),
            "moved_vs_shuffled": stats.paired_delta(moved, pooled, p.bootstrap, p.confidence).as_dict(),
        }
    refined = _pooled([step(f"8_eval_refined-seed{seed}") for seed in seeds(config)])
    control = _pooled([step(f"9_eval_refine_control-seed{seed}") for seed in seeds(config)])
    return {
        **row,
        "shuffled_scales": scales,
        "refined_vs_shuffled": stats.paired_delta(refined, pooled, p.bootstrap, p.confidence).as_dict(),
        "shuffled_vs_control": stats.paired_delta(pooled, control, p.bootstrap, p.confidence).as_dict(),
    }


def unrelated_control(exp: Path, metric: str) -> dict:
    """Per seed, the source LoRA moved with the pipeline's own transfer options onto a freshly initialised copy of
    the target (its architecture and tokenizer, no pretraining): its accuracy minus that copy's base, pooled over
    seeds with a paired-bootstrap CI. A method that only carries structure the two models share gets ~0 here; one
    that fits the adapter's effect into whatever model it is given may not."""
    from transfer_zoo import random_copy

    from paw.config.loader import load_config
    from paw.config.pipeline_schema import PipelineConfig
    from paw.eval.api import evaluate
    from paw.eval.runner import EvalOptions
    from paw.pipeline import stats
    from paw.pipeline.step_runners import transfer_options
    from paw.pipeline.steps import seeds
    from paw.transfer.api import transfer
    from paw.transfer.weights import local_model_dir

    config = load_config(exp / "config.yaml", [], schema=PipelineConfig)
    (task,) = config.eval.tasks
    root = exp / "unrelated"
    copy = root / "model"
    if not (copy / "config.json").is_file():
        random_copy(local_model_dir(config.target.name_or_path, None, "target"), copy)

    def scores(adapter: Path | None, out: Path) -> list[float]:
        samples = out / f"samples_{task}.jsonl"
        if not samples.is_file():
            evaluate(
                [task],
                model=str(copy),
                adapter=None if adapter is None else str(adapter),
                data_files=config.eval.data_files,
                options=EvalOptions(log_samples=True),
                output=out,
            )
        return _scores(samples, metric)

    base, moved = scores(None, root / "base"), []
    for seed in seeds(config):
        out = root / f"seed{seed}"
        if not (out / "adapter" / "adapter_config.json").is_file():
            shutil.rmtree(out, ignore_errors=True)
            source = _source_adapter(exp, seed)
            transfer(source, str(copy), out / "adapter", config.source.name_or_path, transfer_options(config))
        moved.append(scores(out / "adapter", out / "eval"))
    p = config.pipeline
    return {
        "unrelated_base": round(stats.mean(base), 6),
        "unrelated_vs_base": stats.paired_delta(_pooled(moved), base, p.bootstrap, p.confidence).as_dict(),
    }


def ci(entry: dict | None, scale: float = 1.0, signed: bool = False) -> str:
    if not entry or entry.get("value") is None:
        return (entry or {}).get("reason") or "n/a"
    sign = "+" if signed else ""
    v, lo, hi = (scale * entry[k] for k in ("value", "low", "high"))
    return f"{v:{sign}.2f} [{lo:{sign}.2f}, {hi:{sign}.2f}]"


def main() -> None:
    from paw.models.zoo import names

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", help="source:target,... (default: every ordered pair of zoo models)")
    parser.add_argument("--labels", choices=("source", "data"), default="source")
    parser.add_argument("--refine-steps", type=int, default=200)
    parser.add_argument("--refine-examples", type=int, default=200)
    parser.add_argument(
        "--shuffled",
        choices=("all", "gain"),
        help="also the shuffled-layer control, on every pair or where the gain it checks (refined − control; "
        "without a refine, the moved adapter's RR) has a CI above 0",
    )
    parser.add_argument("--method", default="align", help="the transfer method (default: the demo's align)")
    parser.add_argument(
        "--unrelated",
        action="store_true",
        help="also the unrelated control: the source LoRA moved onto a freshly initialised copy of the target",
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the pipelines here, reusing what an earlier run there finished"
    )
    parser.add_argument("--json", type=Path, help="also write every pair's results here")
    args = parser.parse_args()
    pairs = args.pairs.split(",") if args.pairs else [f"{s}:{t}" for s in names() for t in names() if s != t]
    extra = [
        f"transfer.refine.labels={args.labels}",
        f"transfer.refine.steps={args.refine_steps}",
        f"transfer.refine.examples={args.refine_examples}",
        f"transfer.method={args.method}",
    ]
    rows = []
    print(
        "| pair | own LoRA gain | RR moved | RR moved + refine | refined − control | kept scales | "
        "kept by val. loss − control | kept runs | shuffled + refine − control | refined − shuffled + refine | "
        "shuffled's kept scales | RR shuffled (no refine) | moved − shuffled (no refine) | unrelated − its base | s |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    root = args.workdir or Path(tempfile.mkdtemp(prefix="paw-zoo-pipeline-"))
    for pair in pairs:
        row = run_pair(pair, root, extra)
        rows.append(row)
        if "error" in row:
            print(f"| {pair} | failed: {row['error']} |" + " |" * 13, flush=True)
            continue
        checked = row.get("refined_vs_control") if args.refine_steps else row.get("recovery_ratio")
        gained = ((checked or {}).get("low") or 0) > 0
        if args.shuffled == "all" or (args.shuffled == "gain" and gained):
            row.update(shuffled_control(Path(row["exp"]), row["metric"]))
        if args.unrelated:
            row.update(unrelated_control(Path(row["exp"]), row["metric"]))
        gain = row["models"]["target_lora"]["delta_vs_base"]
        kept = row.get("refine_kept") or {}
        print(
            f"| {pair} | {ci(gain, 100, True)} | {ci(row.get('recovery_ratio'))} | "
            f"{ci(row.get('recovery_ratio_refined'))} | {ci(row.get('refined_vs_control'), 100, True)} | "
            f"{row.get('refine_start_scales')} | {ci(kept.get('vs_control'), 100, True)} | "
            f"{', '.join(kept.get('runs', []))} | {ci(row.get('shuffled_vs_control'), 100, True)} | "
            f"{ci(row.get('refined_vs_shuffled'), 100, True)} | {row.get('shuffled_scales', '')} | "
            f"{ci(row.get('shuffled_recovery_ratio')) if 'shuffled_recovery_ratio' in row else ''} | "
            f"{ci(row.get('moved_vs_shuffled'), 100, True) if 'moved_vs_shuffled' in row else ''} | "
            f"{ci(row.get('unrelated_vs_base'), 100, True) if args.unrelated else ''} | {row['seconds']} |",
            flush=True,
        )
    if args.json:
        settings = {key: str(v) if isinstance(v, Path) else v for key, v in vars(args).items()}
        args.json.write_text(json.dumps({"args": settings, "pairs": rows}, indent=1))


if __name__ == "__main__":
    main()
