"""``paw pipeline``: CLI glue over ``paw.pipeline.scheduler``, and the results table it prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from paw.cli import consoles
from paw.errors import PawError

console = consoles.console(piped_width=120)


def find_pipeline(root: Path, name: str | None, config_stem: str):
    """The pipeline experiment to resume: the one named, else the newest made from a config of this name."""
    from paw.experiment.layout import Experiment
    from paw.utils.io import read_json, read_json_or_none

    if name is not None:
        exp = Experiment.at(root, name)
        if not exp.metadata_file.is_file():
            raise PawError(f"--resume: no pipeline experiment '{name}' in {exp.root}")
        return exp, read_json(exp.metadata_file)
    found = []
    for meta_file in Path(root).glob("*/metadata.json"):
        meta = read_json_or_none(meta_file) or {}
        if meta.get("kind") == "pipeline" and meta.get("config_stem") == config_stem:
            found.append((meta.get("created", ""), meta_file.parent.name, meta))
    if not found:
        raise PawError(
            f"--resume: no pipeline made from a config named '{config_stem}' in {Path(root).resolve()}; "
            "name one with --name"
        )
    _, exp_name, meta = max(found)
    return Experiment.at(root, exp_name), meta


def results_table(results: dict[str, Any]) -> Table:
    from paw.pipeline.report import LABELS, delta_text, pct, rr_text

    table = Table(
        title=f"{results['source']} → {results['target']} ({results['seeds']} seed(s))", title_justify="left"
    )
    for column in ("task", "model", "acc %", "± se", f"Δ vs base [{results['confidence']:.0%} CI]"):
        table.add_column(column)
    for task, entry in results["tasks"].items():
        for name, row in entry["models"].items():
            table.add_row(
                task,
                LABELS[name],
                pct(row["value"]),
                pct(row["stderr"]),
                delta_text(row.get("delta_vs_base")),
            )
        refined = "refined_vs_control" in entry
        table.add_row(
            task,
            "[bold]recovery ratio[/]",
            rr_text(entry.get("recovery_ratio")),
            "",
            "",
            end_section=not refined,
        )
        kept = entry.get("refine_kept")
        if refined:  # the refined transfer's RR; its last column: the delta against the same-budget control
            table.add_row(
                task,
                "[bold]RR refined[/] (Δ vs control)",
                rr_text(entry.get("recovery_ratio_refined")),
                "",
                delta_text(entry["refined_vs_control"]),
                end_section=kept is None,
            )
        if kept is not None:  # (a refine stage's) per seed the run with the lower validation loss
            table.add_row(
                task,
                f"[bold]RR kept[/] ({', '.join(kept['runs'])}; Δ vs control)",
                rr_text(kept["recovery_ratio"]),
                "",
                delta_text(kept["vs_control"]),
                end_section=True,
            )
    return table


def pipeline(
    config_path: Path,
    overrides: list[str],
    quick_test: bool,
    resume: bool,
    steps: str | None,
    seeds: int | None,
    name: str | None,
    profile: str | None,
    command: str,
) -> None:
    from paw.config.loader import load_config
    from paw.config.pipeline_schema import PipelineConfig
    from paw.pipeline.ranks import Ranks
    from paw.pipeline.steps import parse_steps
    from paw.utils.processes import is_main

    try:
        if seeds is not None:
            overrides = [*overrides, f"pipeline.seeds={seeds}"]
        config = load_config(config_path, overrides, profile, schema=PipelineConfig)
        only = parse_steps(steps, config) if steps else None
        exp = None
        if resume:
            exp, meta = find_pipeline(
                Path(config.experiment.root), name or config.experiment.name, config_path.stem
            )
            if meta.get("status") == "completed" and only is None and is_main():
                console.print(f"{exp.dir}: already completed; re-running only steps whose inputs changed")
            quick_test = quick_test or bool(meta.get("quick_test"))
    except PawError as err:  # every rank reads the same arguments and files, so every rank fails alike
        Ranks().fail_alike(err)
    from paw.pipeline.scheduler import run_pipeline
    from paw.utils.io import read_json

    result = run_pipeline(
        config,
        name=name,
        config_stem=config_path.stem,
        resume=exp,
        only=only,
        quick_test=quick_test,
        command=command,
    )
    if not is_main():
        return  # rank 0 prints the one report of a launched pipeline
    results = read_json(result.experiment.results / "pipeline_results.json")
    console.print(results_table(results))
    console.print(f"[green]{result.status}[/] {result.experiment.dir}")
    console.print(f"  report: {result.experiment.report}")
    console.print(f"  tables: {result.experiment.results / 'pipeline_results.md'} (.json, .csv)")
