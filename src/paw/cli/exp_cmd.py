"""``paw exp list|show|compare``: browse the experiments root as tables (reads files only; no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from paw.cli import consoles
from paw.cli.edge import cli_errors
from paw.experiment.layout import DEFAULT_ROOT

exp_app = typer.Typer(help="Browse experiments: list, show one, compare several.", no_args_is_help=True)
RootOpt = Annotated[Path, typer.Option("--root", help="Experiments root (experiment.root).")]
LIST_COLUMNS = ("name", "kind", "status", "model", "task", "best", "time", "created")


def _console() -> Console:
    return consoles.console(stderr=False, piped_width=160)


@exp_app.command("list")
@cli_errors
def list_experiments(root: RootOpt = Path(DEFAULT_ROOT)) -> None:
    """One line per experiment: status, model, task, best metric, time."""
    from paw.experiment.browse import experiment_dirs, resume_command, summarize
    from paw.utils.io import read_json_or_none

    dirs = experiment_dirs(root)
    table = Table(title=f"{len(dirs)} experiment(s) in {root}", title_justify="left")
    longest = max((len(d.name) for d in dirs), default=4)
    for column in LIST_COLUMNS:  # the name is typed next: never cut or wrapped; the other columns wrap
        if column == "name":
            table.add_column(column, min_width=longest, no_wrap=True)
        else:
            table.add_column(column, overflow="fold")
    to_resume = []
    for exp in dirs:
        summary = summarize(exp)
        table.add_row(*(str(summary.get(c, "")) for c in LIST_COLUMNS))
        command = resume_command(exp, read_json_or_none(exp / "metadata.json") or {})
        if command:
            to_resume.append(f"  {summary['name']} ({summary['status']}): {command}")
    console = _console()
    console.print(table)
    if to_resume:
        console.print("to continue a run that stopped:\n" + "\n".join(to_resume), markup=False)


@exp_app.command("show")
@cli_errors
def show(
    experiment: Annotated[str, typer.Argument(help="Experiment name or dir.")],
    root: RootOpt = Path(DEFAULT_ROOT),
) -> None:
    """Everything one experiment recorded, and where its files are."""
    from paw.experiment.browse import find, resume_command, summarize
    from paw.utils.io import read_json

    path = find(experiment, root)
    table = Table(show_header=False, title=str(path), title_justify="left")
    for key, value in summarize(path).items():
        table.add_row(key, str(value))
    console = _console()
    console.print(table)
    meta = read_json(path / "metadata.json")
    if meta.get("error"):
        console.print(f"error: {meta['error']}", markup=False, style="red")
    command = resume_command(path, meta)
    if command:
        console.print(f"to continue: {command}", markup=False)
    for name in ("report.md", "config.yaml", "results", "plots", "steps"):
        if (path / name).exists():
            console.print(f"  {name}: {path / name}")


@exp_app.command("compare")
@cli_errors
def compare(
    experiments: Annotated[list[str], typer.Argument(help="Two or more experiment names or dirs.")],
    root: RootOpt = Path(DEFAULT_ROOT),
) -> None:
    """Several runs side by side: one column per run, one row per metric any of them has."""
    from paw.experiment.browse import find, summarize

    summaries = [summarize(find(ref, root)) for ref in experiments]
    rows: dict[str, None] = {}
    for summary in summaries:
        rows.update(dict.fromkeys(k for k in summary if k != "name"))
    table = Table(title_justify="left")
    table.add_column("")
    for summary in summaries:
        table.add_column(summary["name"], overflow="fold")
    for row in rows:
        table.add_row(row, *(str(s.get(row, "")) for s in summaries))
    _console().print(table)
