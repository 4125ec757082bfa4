"""``paw eval``: CLI glue over ``paw.eval.api``."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

from rich.table import Table

from paw.cli import consoles
from paw.errors import PawError

console = consoles.console()
BACKENDS = ("native", "lm-eval")


def _batch_size(text: str) -> int | str:
    if text == "auto":
        return "auto"
    if not text.isdigit() or int(text) < 1:
        raise PawError(f"--batch-size must be a positive integer or 'auto', got '{text}'")
    return int(text)


def _experiment_target(ref: str) -> tuple[str, str, Path]:
    """(base model, adapter dir, results dir) of an experiment (whose lock the caller takes)."""
    from paw.config.loader import read_yaml
    from paw.experiment.layout import find_experiment

    exp, _ = find_experiment(ref, label="paw eval EXPERIMENT")
    if not (exp.final_model / "adapter_config.json").is_file():
        raise PawError(
            f"experiment {exp.dir} has no final adapter (models/final_model); did training finish?"
        )
    base = read_yaml(exp.config_file)["model"]["name_or_path"]
    return base, str(exp.final_model), exp.results


def run(
    experiment,
    model,
    adapter,
    tasks,
    data_files,
    sample_ratio,
    limit,
    num_fewshot,
    batch_size,
    output,
    log_samples,
    backend,
    dtype,
    seed,
    other_base=False,
    fewshot_files=(),
) -> None:
    from paw.eval.runner import EvalOptions

    if backend not in BACKENDS:
        raise PawError(f"--backend must be one of {', '.join(BACKENDS)}, got '{backend}'")
    if not tasks:
        raise PawError("--tasks: name at least one task, e.g. --tasks arc_easy,piqa")
    from paw.eval.api import assign_data_files

    names = [name.strip() for name in tasks.split(",") if name.strip()]  # checked against the registry later
    options = EvalOptions(
        fewshot_files=assign_data_files(names, list(fewshot_files), "--fewshot-file"),
        limit=limit,
        sample_ratio=sample_ratio,
        seed=seed,
        num_fewshot=num_fewshot,
        batch_size=_batch_size(batch_size),
        log_samples=log_samples,
    )
    from paw.eval.distributed import rank
    from paw.utils.io import check_writable, unused_dir

    stamp, results_dir = time.strftime("%Y%m%d-%H%M%S"), None
    with ExitStack() as held:
        if experiment is not None:
            if model or adapter:
                raise PawError("give an EXPERIMENT or --model/--adapter, not both")
            model, adapter, experiment_results = _experiment_target(experiment)
            if output is None:  # into the experiment: one result set per invocation, one writer at a time
                output, results_dir = unused_dir(experiment_results / "eval", stamp), experiment_results
                if rank() == 0:
                    from paw.experiment.lock import ExperimentLock

                    held.enter_context(ExperimentLock(results_dir.parent, "paw eval"))
        output = Path(output or unused_dir("eval_results", stamp))
        if output.is_dir() and any(output.iterdir()):
            raise PawError(
                f"--output {output} already holds files; paw never mixes two runs' results: choose a new dir"
            )
        check_writable(output, "--output")
        if backend == "lm-eval":
            from paw.eval.lm_eval_backend import evaluate_with_lm_eval

            results = evaluate_with_lm_eval(
                tasks, model, adapter, data_files, options, output, dtype, other_base=other_base
            )
        else:
            from paw.eval.api import evaluate

            files = assign_data_files(names, data_files)
            results = evaluate(tasks, model, adapter, files, options, output, dtype, other_base=other_base)
        if results_dir is not None and rank() == 0:
            from paw.eval.api import record_summary

            record_summary(results_dir, output, subset=bool(limit or sample_ratio))
    if rank() == 0:
        _print(results, output)


def _print(results: dict, output: Path) -> None:
    from paw.eval.api import metric_rows

    table = Table(title=f"{results['model']['name']}" + (" + adapter" if results["model"]["adapter"] else ""))
    for column in ("task", "metric", "value", "± stderr", "n"):
        table.add_column(column)
    for row in metric_rows(results):
        value = "" if row["value"] is None else f"{row['value']:.4f}"
        stderr = "" if row["stderr"] is None else f"{row['stderr']:.4f}"
        table.add_row(row["task"], row["metric"], value, stderr, str(row["n"]))
    consoles.console(stderr=False).print(table)
    if "cs_average" in results:
        consoles.console(stderr=False).print(f"commonsense average: {results['cs_average']:.4f}")
    console.print(f"results: {output}")
