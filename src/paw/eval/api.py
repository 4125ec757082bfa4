"""``paw eval`` as a Python function: load the model once, run each task, write results.json/.csv/.md.

Results files (in ``output``; for an experiment, its ``results/`` with an ``eval_`` prefix):
- ``results.json``: per task metrics with stderr, n, seconds, items/s, tokens/s; model and adapter fingerprints;
  paw and package versions; the options used;
- ``results.csv`` (task, metric, value, stderr, n) and ``results.md`` (a table);
- ``samples_<task>.jsonl`` with ``log_samples``: choices' log-likelihoods / generations, prediction, gold.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from paw.data.builtin import resolve_data_file
from paw.errors import PawError
from paw.eval.runner import EvalOptions, TaskResult, run_task
from paw.eval.tasks import parse_tasks
from paw.experiment.metadata import now, package_versions
from paw.utils import memory
from paw.utils.io import atomic_write_json, atomic_write_text, read_json, read_json_or_none


def metric_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for task, values in results["tasks"].items():
        for metric, value in values.items():
            if metric.endswith("_stderr") or metric in ("n", "seconds", "items_per_s", "tokens_per_s"):
                continue
            rows.append(
                {
                    "task": task,
                    "metric": metric,
                    "value": value,
                    "stderr": values.get(f"{metric}_stderr"),
                    "n": values["n"],
                }
            )
    return rows


def _fmt(value: Any) -> str:
    return "" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


def markdown_table(results: dict[str, Any]) -> str:
    lines = ["| task | metric | value | ± stderr | n |", "|---|---|---|---|---|"]
    for row in metric_rows(results):
        lines.append(
            f"| {row['task']} | {row['metric']} | {_fmt(row['value'])} | {_fmt(row['stderr'])} | {row['n']} |"
        )
    return "\n".join(lines) + "\n"


def write_results(
    results: dict[str, Any], samples: dict[str, list[dict]], output: Path, prefix: str = ""
) -> list[Path]:
    output.mkdir(parents=True, exist_ok=True)
    paths = [atomic_write_json(output / f"{prefix}results.json", results)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["task", "metric", "value", "stderr", "n"])
    writer.writeheader()
    writer.writerows(metric_rows(results))
    paths.append(atomic_write_text(output / f"{prefix}results.csv", buffer.getvalue()))
    header = f"# Evaluation of `{results['model']['name']}`" + (
        f" + adapter `{results['model']['adapter']}`" if results["model"]["adapter"] else ""
    )
    paths.append(atomic_write_text(output / f"{prefix}results.md", header + "\n\n" + markdown_table(results)))
    for task, rows in samples.items():
        if rows:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            paths.append(atomic_write_text(output / f"{prefix}samples_{task}.jsonl", text))
    return paths


SUMMARY = (
    "eval_results"  # results/eval_results.{json,csv,md}: the experiment's evaluation as exp list shows it
)


def record_summary(results_dir: Path, result_set: Path, subset: bool) -> None:
    """Point the experiment's summary at ``result_set`` (a copy of its results, naming it): a run on all the data
    always, a subset run (--limit/--sample-ratio) only where no full-data summary exists."""
    current = read_json_or_none(results_dir / f"{SUMMARY}.json") or {}
    if subset and current and not current.get("subset", True):
        return
    results = read_json(result_set / "results.json")
    atomic_write_json(
        results_dir / f"{SUMMARY}.json",
        {**results, "source": str(result_set.relative_to(results_dir)), "subset": subset},
    )
    for suffix in ("csv", "md"):
        if (result_set / f"results.{suffix}").is_file():
            atomic_write_text(
                results_dir / f"{SUMMARY}.{suffix}", (result_set / f"results.{suffix}").read_text()
            )


def assign_data_files(
    task_names: list[str], data_files: list[str], flag: str = "--data-file"
) -> dict[str, str]:
    """``--data-file`` (or ``--fewshot-file``) values: ``task=path`` pairs, or one bare path when exactly one task
    is asked for."""
    assigned: dict[str, str] = {}
    for item in data_files:
        task, sep, path = item.partition("=")
        if not sep:
            if len(task_names) != 1:
                raise PawError(
                    f"{flag} {item}: with several tasks, write TASK=PATH (e.g. arc_easy=arc.jsonl)"
                )
            task, path = task_names[0], item
        if task not in task_names:
            raise PawError(f"{flag} {item}: task '{task}' is not among --tasks ({', '.join(task_names)})")
        if not resolve_data_file(path).is_file():
            raise PawError(f"{flag} {path}: file not found")
        assigned[task] = path
    return assigned


def evaluate(
    tasks: str | list[str],
    model: str | None = None,
    adapter: str | None = None,
    data_files: dict[str, str] | None = None,
    options: EvalOptions = EvalOptions(),
    output: str | Path | None = None,
    dtype: str = "auto",
    models_dir: str | None = None,
    prefix: str = "",
    other_base: bool = False,
) -> dict[str, Any]:
    """Evaluate a base model (+ adapter) on paw's registry tasks; returns the results dict (and writes it)."""
    from paw.eval import distributed
    from paw.models.loaded import load_for_eval

    task_list = parse_tasks(tasks)
    # the peaks of this evaluation (model load included), not of the process
    resettable = memory.reset_peaks()
    loaded = load_for_eval(model, adapter, dtype, models_dir, other_base)
    results: list[TaskResult] = []
    for task in task_list:
        results.append(
            run_task(
                loaded.model,
                loaded.tokenizer,
                task,
                (data_files or {}).get(task.name),
                options,
                loaded.prompt_spec,
            )
        )
    summary = {
        "created": now(),
        "model": {
            "name": loaded.name,
            "location": loaded.location,
            "adapter": loaded.adapter,
            "fingerprint": loaded.fingerprint,
        },
        "tasks": {r.task: r.summary() for r in results},
        "options": {**asdict(options), "data_files": data_files or {}},
        "memory": memory.peaks(resettable),
        "versions": package_versions(),
    }
    cs = [r.metrics["acc"] for r in results if r.task.startswith("cs_") and r.metrics.get("acc") is not None]
    if len(cs) > 1:
        summary["cs_average"] = sum(cs) / len(cs)
    if output is not None and distributed.rank() == 0:
        write_results(summary, {r.task: r.samples for r in results}, Path(output), prefix)
    return summary
