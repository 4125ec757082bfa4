"""``paw train`` and ``paw validate``: CLI glue over ``paw.config`` and ``paw.train.recipe``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from paw.cli import consoles
from paw.config.loader import load_config
from paw.config.schema import RunConfig
from paw.errors import PawError
from paw.utils.plan import plan_text

console = consoles.console()


def _check_paths(config: RunConfig) -> None:
    """Cheap checks that need no torch: data files exist, the model name resolves."""
    from paw.data.builtin import resolve_data_file
    from paw.models.resolve import resolve_model

    for key in ("train_file", "val_file"):
        value = getattr(config.data, key)
        if value and not resolve_data_file(value).is_file():
            raise PawError(f"data.{key}: file not found: {value}")
    resolve_model(config.model.name_or_path, config.paths.models_dir, build_tiny=False)


def _plan_table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    for key, value in rows.items():
        table.add_row(key.replace("_", " "), plan_text(key, value))
    return table


def train(
    config_path: Path | None,
    overrides: list[str],
    validate_only: bool,
    dry_run: bool,
    resume: str | None,
    name: str | None,
    profile: str | None,
    command: str,
    resume_changed: bool = False,
) -> None:
    from paw.experiment.layout import find_experiment

    if resume_changed and resume is None:
        raise PawError("--resume-changed goes with --resume EXPERIMENT")

    resume_target = None
    if resume is not None:
        if config_path is not None or overrides:
            raise PawError(
                "--resume continues an experiment with its saved config; drop CONFIG and overrides"
            )
        exp, checkpoint = find_experiment(resume)
        config_path, resume_target = exp.config_file, (exp, checkpoint)
        status = _status(exp)
        if status == "completed":
            console.print(f"experiment {exp.dir} is already completed; nothing to resume")
            return
    if config_path is None:
        raise PawError("missing CONFIG: paw train CONFIG [k=v ...] (or paw train --resume EXPERIMENT)")
    config = load_config(config_path, overrides, profile)
    _check_paths(config)
    if validate_only:
        if resume_target is None:  # the experiment the run would create: a free name in a writable root
            from paw.experiment.layout import Experiment, default_name
            from paw.utils.io import check_writable

            exp = Experiment.at(
                config.experiment.root, name or config.experiment.name or default_name(config_path.stem)
            )
            exp.ensure_new()
            check_writable(exp.root, "experiment.root")
        validate_loaded(config, str(config_path))
        return
    from paw.train.recipe import run_training

    result = run_training(
        config,
        name=name,
        config_stem=config_path.stem,
        resume=resume_target,
        dry_run=dry_run,
        command=command,
        allow_changes=resume_changed,
    )
    if dry_run:
        console.print(_plan_table("dry run: what would train (nothing written)", result.report))
        return
    if result.experiment is None or not result.report:  # a non-zero rank of a multi-process run
        return
    from paw.train.report import loss_span

    report = result.report
    console.print(f"[green]completed[/] {result.experiment.dir}")
    console.print(f"  loss {loss_span(report.get('steps') or [])}")
    console.print(
        f"  {len(report.get('checkpoints_on_disk', []))} checkpoint(s) on disk; adapter: {result.experiment.final_model}",
    )


def _status(exp) -> str | None:
    from paw.utils.io import read_json_or_none

    return (read_json_or_none(exp.metadata_file) or {}).get("status")


def validate_loaded(config: RunConfig, source: str, schema_only: bool = False) -> None:
    """Report what a config would do; with schema_only, stop after the cheap checks."""
    if schema_only:
        console.print(f"[green]ok[/] {source}: config is valid")
        return
    from paw.train.recipe import prepare

    prepared = prepare(config, load_model=False)
    data = prepared.data.report
    rows = {
        "model": config.model.name_or_path,
        "objective": config.training.objective,
        "data format": data["format"],
        "train examples": data["train"]["examples"],
        "truncated / dropped": f"{data['train']['truncated']} / {data['train'].get('dropped', 0)}",
        "val examples": data["val"]["examples"] if data["val"] else 0,
        "peft": config.peft.summary(),
        "max_steps": config.training.max_steps,
    }
    console.print(_plan_table(f"{source}: valid", rows))
    for warning in prepared.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def _validate_pipeline(path: Path, profile: str | None, schema_only: bool) -> None:
    """A pipeline config: schema, data files and both model names (fingerprinting reads every input)."""
    from paw.config.pipeline_schema import PipelineConfig
    from paw.pipeline.steps import fingerprints, plan

    config = load_config(path, [], profile, schema=PipelineConfig)
    if not schema_only:
        fingerprints(config, plan(config))
    rows = {
        "source → target": f"{config.source.name_or_path} → {config.target.name_or_path}",
        "tasks": ", ".join(config.eval.tasks),
        "steps": len(plan(config)),
        "transfer": f"{config.transfer.method}, depth {config.transfer.depth}",
    }
    console.print(f"[green]ok[/] {path}: valid pipeline config")
    console.print(_plan_table("", rows))


def validate(configs: list[Path], profile: str | None, schema_only: bool) -> None:
    """Validate every file (one verdict per file, the failures included); exit 2 if any failed."""
    failed = []
    for path in configs:
        try:
            _validate_one(path, profile, schema_only)
        except PawError as err:
            failed.append(path)
            console.print(f"[red]invalid[/] {path}: {_escape(str(err))}")
    if failed:
        raise PawError(f"{len(failed)} of {len(configs)} config(s) invalid: {', '.join(map(str, failed))}")


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _validate_one(path: Path, profile: str | None, schema_only: bool) -> None:
    from paw.config.loader import load_with_extends

    if {"source", "target"} <= set(load_with_extends(path)):
        _validate_pipeline(path, profile, schema_only)
        return
    config = load_config(path, [], profile)
    if not schema_only:
        _check_paths(config)
    validate_loaded(config, str(path), schema_only)
