"""The pipeline report: ``results/pipeline_results.{json,csv,md}``, ``plots/pipeline.png``, training curves and
``report.md``, built only from the step records and the files the steps wrote (so it can be rebuilt any time).

Per task: the accuracy (the task's primary metric) of each model with its stderr, each delta against the base
of the same model with a paired-bootstrap CI, and the recovery ratio (see ``paw.pipeline.stats``); with a refine
stage also the refined adapter's recovery ratio and its paired delta against the same-budget control, and the
same for the run the refine stage keeps per seed (the refined one only where its validation loss is the lower).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from paw.config.pipeline_schema import PipelineConfig
from paw.experiment.layout import Experiment
from paw.pipeline import stats
from paw.pipeline.steps import Step
from paw.utils.io import atomic_write_json, atomic_write_text, read_json

# model row -> (step number, the base it is compared with)
MODELS = {
    "source_base": (1, None),
    "source_lora": (2, "source_base"),
    "target_base": (4, None),
    "transferred": (5, "target_base"),
    "target_lora": (7, "target_base"),
    "refined": (8, "target_base"),
    "refine_control": (9, "target_base"),
}
LABELS = {
    "source_base": "source base",
    "source_lora": "source + LoRA",
    "target_base": "target base",
    "transferred": "target + transferred",
    "target_lora": "target + own LoRA",
    "refined": "target + refined transfer",
    "refine_control": "target + refine control",
}


# the refine's kept run (``paw.transfer.refine.kept_run``) by the name of the model row it is evaluated as
KEPT_ROW = {"transferred_init": "refined", "standard_init": "control"}


def primary_metric(task: str) -> str:
    from paw.eval.tasks import get_task

    return get_task(task).metrics[0]


def _scores(record: dict[str, Any], task: str, metric: str) -> list[float]:
    """Per-question scores of one eval, from the samples file written next to its results."""
    results = Path(record["outputs"]["results"])
    prefix = results.name.removesuffix("results.json")
    path = results.with_name(f"{prefix}samples_{task}.jsonl")
    with path.open(encoding="utf-8") as handle:
        return [float(json.loads(line)[metric]) for line in handle if line.strip()]


def _per_question(
    records: dict[str, dict[str, Any]], plan: list[Step], number: int, task: str, metric: str
) -> tuple[list[float], list[float]] | None:
    """(per-question score averaged over seeds, each seed's accuracy), or None when the step has not run."""
    runs = [records[s.key] for s in plan if s.number == number and s.key in records]
    if not runs:
        return None
    vectors = [_scores(r, task, metric) for r in runs]
    if len({len(v) for v in vectors}) != 1:
        raise ValueError(f"task {task}: seeds of step {number} scored different numbers of questions")
    return _over_seeds(vectors)


def _over_seeds(vectors: list[list[float]]) -> tuple[list[float], list[float]]:
    """(each question's score averaged over the seeds' vectors, each seed's accuracy)."""
    return [sum(col) / len(col) for col in zip(*vectors, strict=True)], [stats.mean(v) for v in vectors]


def _start_scales(plan: list[Step], records: dict[str, dict[str, Any]]) -> list[float]:
    """Per seed, the scale the refine's guard kept the moved adapter at (0: dropped, the refined run is the
    control): a refined − control gain comes only from the seeds above 0."""
    return [
        records[s.key]["outputs"]["refine_start_scale"]
        for s in plan
        if s.number == 3 and "refine_start_scale" in records.get(s.key, {}).get("outputs", {})
    ]


def _kept_per_question(
    records: dict[str, dict[str, Any]], plan: list[Step], task: str, metric: str
) -> tuple[list[float], list[float], list[str]] | None:
    """Per seed the refine stage's kept run (step 8's adapter or step 9's, by the two validation losses in step 3's
    record, ``paw.transfer.refine.kept_run``): the per-question scores averaged over seeds, each seed's accuracy and
    which run each seed kept; None unless every seed with a refine stage has its pick and both evals."""
    from paw.transfer.refine import kept_run

    evals = {(s.number, s.seed): records.get(s.key) for s in plan if s.number in (8, 9)}
    vectors, kept = [], []
    for step in plan:
        outputs = records.get(step.key, {}).get("outputs", {}) if step.number == 3 else {}
        if "refine_start_scale" not in outputs:
            continue
        pick = kept_run(
            {
                "transferred_init": {"val_loss": outputs.get("refine_val_loss")},
                "standard_init": {"val_loss": outputs.get("control_val_loss")},
            }
        )
        if pick is None:
            return None
        run = KEPT_ROW[pick]
        chosen = evals.get((8 if run == "refined" else 9, step.seed))
        if chosen is None:
            return None
        vectors.append(_scores(chosen, task, metric))
        kept.append(run)
    if not vectors:
        return None
    return *_over_seeds(vectors), kept


def build_results(
    config: PipelineConfig, plan: list[Step], records: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    p = config.pipeline
    tasks: dict[str, Any] = {}
    for task in config.eval.tasks:
        metric = primary_metric(task)
        vectors = {
            name: _per_question(records, plan, number, task, metric) for name, (number, _) in MODELS.items()
        }
        rows = {}
        for name, (number, base) in MODELS.items():
            if vectors[name] is None:
                continue
            scores, per_seed = vectors[name]
            row: dict[str, Any] = {
                "step": number,
                "value": round(stats.mean(scores), 6),
                "stderr": round(stats.stderr(scores), 6),
                "n": len(scores),
                "per_seed": [round(v, 6) for v in per_seed],
            }
            if base is not None and vectors[base] is not None:
                delta = stats.paired_delta(scores, vectors[base][0], p.bootstrap, p.confidence)
                row["delta_vs_base"] = delta.as_dict()
            rows[name] = row
        entry: dict[str, Any] = {"metric": metric, "models": rows}
        for key, moved in (("recovery_ratio", "transferred"), ("recovery_ratio_refined", "refined")):
            if all(vectors[m] is not None for m in ("target_base", "target_lora", moved)):
                entry[key] = stats.recovery_ratio(
                    vectors["target_base"][0],
                    vectors["target_lora"][0],
                    vectors[moved][0],
                    p.bootstrap,
                    p.confidence,
                )
        if vectors["refined"] is not None and vectors["refine_control"] is not None:
            entry["refined_vs_control"] = stats.paired_delta(
                vectors["refined"][0], vectors["refine_control"][0], p.bootstrap, p.confidence
            ).as_dict()
            entry["refine_start_scales"] = _start_scales(plan, records)
            kept = _kept_per_question(records, plan, task, metric)
            if kept is not None:
                scores, per_seed, runs = kept
                base, lora = vectors["target_base"], vectors["target_lora"]
                rr = None
                if base is not None and lora is not None:
                    rr = stats.recovery_ratio(base[0], lora[0], scores, p.bootstrap, p.confidence)
                entry["refine_kept"] = {
                    "runs": runs,
                    "value": round(stats.mean(scores), 6),
                    "per_seed": [round(v, 6) for v in per_seed],
                    "vs_control": stats.paired_delta(
                        scores, vectors["refine_control"][0], p.bootstrap, p.confidence
                    ).as_dict(),
                    "recovery_ratio": rr,
                }
        tasks[task] = entry
    steps = []
    for step in plan:
        record = records.get(step.key)
        steps.append(
            {
                "key": step.key,
                "step": step.number,
                "title": step.title,
                "status": record["status"] if record else "not run",
                "seconds": record.get("seconds") if record else None,
                **((record or {}).get("memory") or {}),
            }
        )
    return {
        "source": config.source.name_or_path,
        "target": config.target.name_or_path,
        "seeds": p.seeds,
        "confidence": p.confidence,
        "bootstrap": p.bootstrap,
        "tasks": tasks,
        "steps": steps,
        "summary": _summary(tasks),
    }


def _summary(tasks: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for task, entry in tasks.items():
        models = entry["models"]
        out[task] = {name: models[name]["value"] for name in models}
        for key in ("recovery_ratio", "recovery_ratio_refined"):
            if key in entry:
                out[task][key] = entry[key]["value"]
        if "refined_vs_control" in entry:
            out[task]["refined_vs_control"] = entry["refined_vs_control"]["value"]
        if "refine_kept" in entry:
            out[task]["refine_kept_vs_control"] = entry["refine_kept"]["vs_control"]["value"]
    return out


def pct(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def delta_text(delta: dict[str, float] | None) -> str:
    if not delta:
        return ""
    return f"{100 * delta['value']:+.1f} [{100 * delta['low']:+.1f}, {100 * delta['high']:+.1f}]"


def rr_text(rr: dict[str, Any] | None) -> str:
    if rr is None:
        return "not measured (steps 4, 5 and 7 are needed)"
    if rr["value"] is None:
        return rr["reason"]
    return f"{rr['value']:.2f} [{rr['low']:.2f}, {rr['high']:.2f}]"


def kept_text(scales: list[float]) -> str:
    kept = sum(1 for scale in scales if scale > 0)
    return (
        f"the guard kept the moved start in {kept} of {len(scales)} seed(s), scales {scales}; "
        "where it dropped it, the refined run is the control"
    )


def markdown(results: dict[str, Any]) -> str:
    conf = f"{results['confidence']:.0%}"
    lines = [
        f"Source `{results['source']}` → target `{results['target']}`; {results['seeds']} seed(s); accuracy in %, "
        f"± stderr; Δ vs the same model's base with a paired-bootstrap {conf} CI ({results['bootstrap']} resamples).",
        "",
        "| task | model | accuracy | ± stderr | Δ vs base [CI] | n |",
        "|---|---|---|---|---|---|",
    ]
    for task, entry in results["tasks"].items():
        for name, row in entry["models"].items():
            lines.append(
                f"| {task} ({entry['metric']}) | {LABELS[name]} | {pct(row['value'])} | {pct(row['stderr'])} | "
                f"{delta_text(row.get('delta_vs_base'))} | {row['n']} |"
            )
    lines.append("")
    for task, entry in results["tasks"].items():
        lines.append(f"- **recovery ratio** on {task}: {rr_text(entry.get('recovery_ratio'))}")
        if "refined_vs_control" in entry:
            lines.append(
                f"- **refined transfer** on {task}: recovery ratio {rr_text(entry.get('recovery_ratio_refined'))}; "
                f"against the same-budget control {delta_text(entry['refined_vs_control'])} points "
                f"({kept_text(entry['refine_start_scales'])})"
            )
        if "refine_kept" in entry:
            kept = entry["refine_kept"]
            lines.append(
                f"- **kept by validation loss** on {task} (per seed: {', '.join(kept['runs'])}): "
                f"{pct(kept['value'])}%, recovery ratio {rr_text(kept['recovery_ratio'])}; against the control "
                f"{delta_text(kept['vs_control'])} points (the refined run only where its validation loss is below "
                "the control's; both runs' compute)"
            )
    lines += ["", "| step | status | seconds | peak RSS MiB | peak GPU MiB |", "|---|---|---|---|---|"]
    for step in results["steps"]:
        lines.append(
            f"| {step['step']} {step['title']} | {step['status']} | {step.get('seconds') or ''} | "
            f"{step.get('peak_rss_mib') or ''} | {step.get('peak_gpu_mib') or ''} |"
        )
    return "\n".join(lines) + "\n"


def csv_text(results: dict[str, Any]) -> str:
    buffer = io.StringIO()
    fields = ["task", "metric", "model", "step", "value", "stderr", "n", "delta", "delta_low", "delta_high"]
    writer = csv.DictWriter(buffer, fieldnames=[*fields, "recovery_ratio"])
    writer.writeheader()
    for task, entry in results["tasks"].items():
        rr = {
            moved: (entry.get(key) or {}).get("value")
            for moved, key in (("transferred", "recovery_ratio"), ("refined", "recovery_ratio_refined"))
        }
        for name, row in entry["models"].items():
            delta = row.get("delta_vs_base") or {}
            writer.writerow(
                {
                    "task": task,
                    "metric": entry["metric"],
                    "model": name,
                    "step": row["step"],
                    "value": row["value"],
                    "stderr": row["stderr"],
                    "n": row["n"],
                    "delta": delta.get("value"),
                    "delta_low": delta.get("low"),
                    "delta_high": delta.get("high"),
                    "recovery_ratio": rr.get(name),
                }
            )
    return buffer.getvalue()


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def plot_bars(results: dict[str, Any], path: Path) -> bool:
    """Grouped bars: one group per task, one bar per model, error bars at ±1.96 stderr."""
    plt = _pyplot()
    if plt is None or not results["tasks"]:
        return False
    tasks = list(results["tasks"])
    names = [n for n in MODELS if any(n in results["tasks"][t]["models"] for t in tasks)]
    width = 0.8 / max(len(names), 1)
    fig, ax = plt.subplots(figsize=(max(6, 2.5 * len(tasks)), 4))
    for i, name in enumerate(names):
        xs, ys, errs = [], [], []
        for t, task in enumerate(tasks):
            row = results["tasks"][task]["models"].get(name)
            if row:
                xs.append(t + (i - (len(names) - 1) / 2) * width)
                ys.append(100 * row["value"])
                errs.append(196 * row["stderr"])
        ax.bar(xs, ys, width, yerr=errs, capsize=3, label=LABELS[name])
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{results['source']} → {results['target']}")
    ax.legend(fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_training(plan: list[Step], records: dict[str, dict[str, Any]], plots: Path) -> list[str]:
    """Loss and LR curves of both trainings (every seed), from their training_report.json."""
    plt = _pyplot()
    curves = []
    for step in plan:
        record = records.get(step.key)
        if step.number in (2, 6) and record:
            report = Path(record["outputs"]["experiment"]) / "results" / "training_report.json"
            if report.is_file():
                curves.append((step, read_json(report)["steps"]))
    if plt is None or not curves:
        return []
    written = []
    for key, label in (("loss", "train loss"), ("lr", "learning rate")):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for step, points in curves:
            xs = [p["step"] for p in points if p.get(key) is not None]
            ax.plot(
                xs, [p[key] for p in points if p.get(key) is not None], label=step.title.replace("train ", "")
            )
        ax.set_xlabel("step")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = plots / f"training_{key}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path.name)
    return written


def write_report(
    config: PipelineConfig, exp: Experiment, plan: list[Step], records: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    results = build_results(config, plan, records)
    table = markdown(results)
    atomic_write_json(exp.results / "pipeline_results.json", results)
    atomic_write_text(exp.results / "pipeline_results.csv", csv_text(results))
    atomic_write_text(exp.results / "pipeline_results.md", table)
    plots = ["pipeline.png"] if plot_bars(results, exp.plots / "pipeline.png") else []
    plots += plot_training(plan, records, exp.plots)
    body = [f"# Pipeline `{exp.name}`", "", table]
    body += [f"![{p}](plots/{p})" for p in plots]
    body += [
        "",
        "Files: `results/pipeline_results.{json,csv,md}`; each step's record in `steps/<key>.json` and its outputs "
        "in `steps/<key>/` (training experiments with checkpoints and report, eval results with per-question "
        "samples, the transferred adapter with `transfer_report.md`).",
    ]
    atomic_write_text(exp.report, "\n".join(body) + "\n")
    return results
