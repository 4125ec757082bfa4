"""``paw pipeline``: run the transfer study's steps in order, each cached by its fingerprint, then the report.

Layout of a pipeline experiment (``experiments/<name>/``)::

    config.yaml, metadata.json (kind: pipeline, status, failed_step, error), logs/pipeline_<time>.log
    steps/<n>_<kind>[-seed<s>].json      the step record: fingerprint, status, seconds, peak memory, outputs
    steps/<n>_<kind>[-seed<s>]/          its outputs: eval results + per-question samples, a training
                                         experiment (checkpoints, final adapter, report), a transferred adapter
    results/pipeline_results.{json,csv,md}, plots/pipeline.png, plots/training_{loss,lr}.png, report.md

A step runs only when its record is missing, unfinished, or has another fingerprint; a training that was
interrupted resumes from its last checkpoint. A failure marks the pipeline ``failed`` with the step and reason
and keeps every finished step.

Under torchrun / accelerate launch every process runs the pipeline: trainings run DDP (or FSDP/DeepSpeed) across
all of them, evals split the documents and gather, the transfer runs on rank 0 alone. Rank 0 decides what each
step does and writes every file; the others follow it (``paw.pipeline.ranks``).
"""

from __future__ import annotations

import logging
import shutil
import signal
import time
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, NoReturn

from paw.config.loader import dump_config
from paw.config.pipeline_schema import PipelineConfig
from paw.config.schema import Stage
from paw.errors import Interrupted, PawError, PawRuntimeError
from paw.experiment.layout import Experiment, continue_command, default_name
from paw.experiment.lifecycle import RunResult, attached, console_handler, file_handler, interruptible
from paw.experiment.lock import ExperimentLock
from paw.experiment.metadata import new_metadata, now, update_metadata
from paw.pipeline import steps as stepmod
from paw.pipeline.ranks import PeerStopped, Ranks, exit_code_of, reason_of
from paw.pipeline.step_runners import RUNNERS, PipelineRun
from paw.pipeline.steps import Step, train_key
from paw.utils import memory
from paw.utils.io import atomic_write_json, atomic_write_text, read_json, read_json_or_none

log = logging.getLogger("paw.pipeline")


def shrink_for_quick_test(config: PipelineConfig) -> PipelineConfig:
    """``--quick-test``: few steps (a multi-stage schedule scaled to fit), few rows, small batches, short evals."""
    quick = config.pipeline.quick_test
    training = config.training.model_dump(exclude_none=True)
    total = config.training.max_steps or quick.max_steps
    scale = min(1.0, quick.max_steps / total)
    if isinstance(config.training.schedule, list):
        stages = [Stage(steps=max(1, round(s.steps * scale)), lr=s.lr) for s in config.training.schedule]
        training["schedule"] = [s.model_dump() for s in stages]
        training["max_steps"] = sum(s.steps for s in stages)
    else:
        training["max_steps"] = min(total, quick.max_steps)
    save = config.training.save
    training["save"] = {
        "start_step": round(save.start_step * scale),
        "every": max(1, round(save.every * scale)) if save.every else None,
        "keep_last": save.keep_last,
    }
    training.update(per_device_train_batch_size=quick.batch_size, gradient_accumulation_steps=1)
    if config.training.eval_steps:
        training["eval_steps"] = max(1, round(config.training.eval_steps * scale))
    data = config.data.model_copy(
        update={"max_samples": min(config.data.max_samples or quick.train_samples, quick.train_samples)}
    )
    evals = config.eval.model_copy(
        update={"limit": min(config.eval.limit or quick.eval_limit, quick.eval_limit)}
    )
    refine = config.transfer.refine
    if refine.steps:
        refine = refine.model_copy(
            update={
                "steps": max(1, round(refine.steps * scale)),
                "examples": min(refine.examples, quick.train_samples),
            }
        )
    transfer = config.transfer.model_copy(update={"refine": refine})
    return config.model_copy(
        update={
            "training": type(config.training)(**training),
            "data": data,
            "eval": evals,
            "transfer": transfer,
        }
    )


def _log_handlers(exp: Experiment) -> list[tuple[logging.Logger, logging.Handler]]:
    """Pipeline lines to the console; everything (pipeline and training lines) to logs/pipeline_<time>.log."""
    paw_logger = logging.getLogger("paw")
    paw_logger.setLevel(logging.INFO)
    log_file = exp.logs / f"pipeline_{time.strftime('%Y%m%d-%H%M%S')}.log"
    return [(paw_logger, file_handler(log_file)), (log, console_handler())]


PipelineResult = RunResult  # the name paw.api documents


def run_pipeline(
    config: PipelineConfig,
    *,
    name: str | None = None,
    config_stem: str = "pipeline",
    resume: Experiment | None = None,
    only: set[int] | None = None,
    quick_test: bool = False,
    command: str = "paw pipeline",
) -> RunResult:
    """Run (or continue) a pipeline experiment.

    Args:
        config: the validated pipeline config.
        name: experiment name (overrides ``experiment.name``; default ``<config stem>_<timestamp>``).
        resume: an existing pipeline experiment to continue: finished steps with unchanged inputs are skipped.
        only: step numbers to run (others are only read from earlier runs); None runs all.
        quick_test: shrink every step (``pipeline.quick_test``).

    Raises:
        PawError: bad input, or a step needs the output of a step that was not run.
    """
    ranks = Ranks()
    if quick_test:
        config = shrink_for_quick_test(config)
    if resume is not None:
        exp = resume
    else:
        exp = Experiment.at(
            config.experiment.root, name or config.experiment.name or default_name(config_stem)
        )
    plan = stepmod.plan(config)
    if config.transfer.refine.steps:
        _check_refine(config, ranks)

    def setup() -> dict[str, str]:
        if resume is None:
            exp.ensure_new()
        prints = stepmod.fingerprints(config, plan)  # fails on an unknown model or missing data file first
        if resume is None:
            exp.create(checkpoints=False)  # checkpoints live in each training step's own experiment
        return prints

    try:
        fingerprints = ranks.share("setup", setup)
        with ExitStack() as held:
            if ranks.main:
                held.enter_context(ExperimentLock(exp.dir, command))
            return _run_locked(
                config,
                exp,
                resume is not None,
                plan,
                fingerprints,
                only,
                config_stem,
                quick_test,
                command,
                ranks,
            )
    except BaseException as err:
        ranks.abort(err)  # rank 0 failed: the ranks waiting on it stop too
        if ranks.many and not ranks.main and not isinstance(err, PeerStopped):
            ranks.fail(err)  # this rank failed: rank 0 records and prints why
            raise PeerStopped(str(err), exit_code_of(err)) from err
        raise


def _check_refine(config: PipelineConfig, ranks: Ranks) -> None:
    """Refused before anything is written: a refine under several processes, or its data unfit."""
    from paw.transfer.refine import check_inputs

    refine = config.transfer.refine
    if ranks.many:  # its two short runs train on rank 0 alone, which a DDP group would wait on forever
        raise PawError(
            f"transfer.refine: the refine stage runs in one process, and this pipeline runs on {ranks.size}; "
            "run it without torchrun/accelerate launch, or set transfer.refine.steps=0"
        )
    data_file, settings = config.refine_data()
    flag = "transfer.refine.data" if refine.data else "data.train_file"
    check_inputs(data_file, refine.examples, refine.labels, flag, settings)


def _run_locked(
    config: PipelineConfig,
    exp: Experiment,
    resumed: bool,
    plan: list[Step],
    fingerprints: dict[str, str],
    only: set[int] | None,
    config_stem: str,
    quick_test: bool,
    command: str,
    ranks: Ranks,
) -> RunResult:
    if ranks.main:
        atomic_write_text(exp.config_file, dump_config(config))
        meta = new_metadata(exp.name, command, config.training.seed)
        meta.update(
            kind="pipeline",
            source=config.source.name_or_path,
            target=config.target.name_or_path,
            tasks=config.eval.tasks,
            config_stem=config_stem,
            quick_test=quick_test,
            failed_step=None,
            processes=ranks.size,
        )
        if resumed:
            meta = {
                "resumed": now(),
                "status": "running",
                "error": None,
                "failed_step": None,
                "finished": None,
                "processes": ranks.size,
            }
        update_metadata(exp.metadata_file, **meta)
    run = PipelineRun(config, exp, {}, ranks)
    handlers = _log_handlers(exp) if ranks.main else []
    with attached(*handlers), interruptible(ranks.main):
        try:
            status = _run_steps(run, plan, fingerprints, only)
        except BaseException as err:  # stopped between steps (a step needing one not run, a signal, a peer)
            if ranks.main and read_json(exp.metadata_file).get("status") == "running":
                _mark_stopped(run, err)
            raise
    return RunResult(exp, status, run.records)


@dataclass(frozen=True)
class Stop:
    """Why rank 0 stopped: ``interrupted`` (resumable) or ``failed``, the reason recorded, the exit code, and
    whether the reason is another rank's."""

    status: str
    reason: str
    exit_code: int
    from_peer: bool = False


def _why_stopped(run: PipelineRun, err: BaseException) -> Stop:
    """Another rank's posted failure first (rank 0 was stopped because of it), else an interruption, else
    rank 0's own error."""
    peer = run.ranks.peer_failure()
    if peer is not None:
        return Stop("failed", *peer, from_peer=True)
    if isinstance(err, KeyboardInterrupt):
        return Stop(
            "interrupted", signal.Signals(getattr(err, "signum", signal.SIGINT)).name, exit_code_of(err)
        )
    return Stop("failed", reason_of(err), exit_code_of(err))


def _mark_stopped(run: PipelineRun, err: BaseException) -> None:
    """Rank 0 stopped outside a step (a step records its own stop): the pipeline is not left ``running``."""
    stop = _why_stopped(run, err)
    update_metadata(
        run.exp.metadata_file,
        status=stop.status,
        finished=now(),
        error=stop.reason,
        resume_command=continue_command(run.exp.dir, "pipeline"),
    )


def _decide(
    run: PipelineRun, step: Step, fingerprints: dict[str, str], only: set[int] | None
) -> dict[str, Any]:
    """On rank 0: whether ``step`` is ``skip``ped (done before with these inputs: its record comes along),
    ``unselected`` or ``run``."""
    record = read_json_or_none(run.record_file(step))
    fresh = record is not None and record.get("status") == "completed"
    if fresh and record.get("fingerprint") == fingerprints[step.key]:
        log.info("step %s (%s): done before with the same inputs — skipped", step.number, step.title)
        return {"action": "skip", "record": stepmod.located(record, run.exp.dir)}
    if only is not None and step.number not in only:
        log.info("step %s (%s): not selected", step.number, step.title)
        return {"action": "unselected"}
    if step.needs is not None and step.needs.key not in run.records:
        raise PawError(
            f"step {step.number} ({step.title}) needs step {step.needs.number} ({step.needs.title}), "
            f"which has not run with these inputs; add it to --steps"
        )
    if fresh:
        log.info("step %s (%s): inputs changed since it ran — running again", step.number, step.title)
    return {"action": "run"}


def _run_steps(
    run: PipelineRun, plan: list[Step], fingerprints: dict[str, str], only: set[int] | None
) -> str:
    exp = run.exp
    started = time.perf_counter()
    if run.ranks.main:
        where = f" on {run.ranks.size} processes" if run.ranks.many else ""
        log.info("pipeline %s: %d steps%s → %s", exp.name, len(plan), where, exp.dir)
    for step in plan:
        decision = run.ranks.share(
            f"{step.key}/plan", lambda step=step: _decide(run, step, fingerprints, only)
        )
        if decision["action"] == "skip":
            run.records[step.key] = decision["record"]
        elif decision["action"] == "run":
            _run_one(run, step, fingerprints)
    return run.ranks.share("finished", lambda: _finish(run, plan, started))


def _finish(run: PipelineRun, plan: list[Step], started: float) -> str:
    """On rank 0: the report and the pipeline's final status."""
    from paw.pipeline.report import write_report

    exp = run.exp
    status = "completed" if len(run.records) == len(plan) else "partial"
    report = write_report(run.config, exp, plan, run.records)
    update_metadata(
        exp.metadata_file,
        status=status,
        finished=now(),
        seconds=round(time.perf_counter() - started, 2),
        summary=report.get("summary"),
    )
    log.info(
        "pipeline %s %s in %.0f s; report: %s", exp.name, status, time.perf_counter() - started, exp.report
    )
    return status


def _start(run: PipelineRun, step: Step, fingerprints: dict[str, str]) -> dict[str, Any]:
    """On rank 0: the step's ``running`` record, after clearing outputs of other inputs."""
    path = run.record_file(step)
    previous = read_json_or_none(path) or {}
    record = {
        "key": step.key,
        "number": step.number,
        "title": step.title,
        "seed": step.seed,
        "fingerprint": fingerprints[step.key],
        "train_fingerprint": fingerprints.get(train_key(step)),
        "status": "running",
        "started": now(),
        "attempts": previous.get("attempts", 0) + 1,
    }
    same_training = (
        train_key(step) in fingerprints and previous.get("train_fingerprint") == fingerprints[train_key(step)]
    )
    if previous.get("fingerprint") != fingerprints[step.key] and not same_training:
        shutil.rmtree(
            run.out(step), ignore_errors=True
        )  # outputs of other inputs: neither reusable nor resumable
    atomic_write_json(path, record)
    log.info("step %s (%s): running", step.number, step.title)
    return record


def _run_one(run: PipelineRun, step: Step, fingerprints: dict[str, str]) -> None:
    record = run.ranks.share(f"{step.key}/start", lambda: _start(run, step, fingerprints))
    resettable = memory.reset_peaks()
    started = time.perf_counter()
    try:
        if step.kind == "transfer" and not run.ranks.main:
            outputs: dict[str, Any] = {}  # rank 0 transfers; this rank waits for its record below
        else:
            outputs = RUNNERS[step.kind](run, step)
    except BaseException as err:
        if not run.ranks.main:
            raise  # run_pipeline posts it for rank 0
        _record_failure(run, step, record, err, time.perf_counter() - started)
    if run.ranks.main:
        record.update(
            status="completed",
            finished=now(),
            seconds=round(time.perf_counter() - started, 2),
            memory=memory.peaks(resettable),
            outputs=outputs,
        )
        atomic_write_json(run.record_file(step), stepmod.portable(record, run.exp.dir))
        log.info("step %s (%s): done in %.1f s", step.number, step.title, record["seconds"])
    run.records[step.key] = run.ranks.share(f"{step.key}/done", lambda: record)


def _record_failure(
    run: PipelineRun, step: Step, record: dict[str, Any], err: BaseException, seconds: float
) -> NoReturn:
    """On rank 0: mark the step and the pipeline failed (or interrupted) once, with the reason — another
    rank's, where one failed first — write the partial report, and raise the error the CLI shows."""
    from paw.pipeline.report import write_report

    run.ranks.shield()  # the launcher stops every rank now: record and print before its SIGTERM lands
    stop = _why_stopped(run, err)
    reason = stop.reason
    record.update(status=stop.status, finished=now(), seconds=round(seconds, 2), error=reason)
    atomic_write_json(run.record_file(step), record)
    update_metadata(
        run.exp.metadata_file,
        status=stop.status,
        finished=now(),
        failed_step=step.key,
        error=f"step {step.number} ({step.title}): {reason}",
        resume_command=continue_command(run.exp.dir, "pipeline"),
    )
    try:  # the report of what finished; it must not hide the step's own error
        write_report(run.config, run.exp, stepmod.plan(run.config), run.records)
    except Exception as report_err:  # noqa: BLE001
        log.warning("the partial report could not be written: %s", report_err)
    logging.getLogger("paw").error(
        "step %s (%s) failed: %s", step.number, step.title, reason
    )  # log file only: the CLI prints it
    if stop.status == "interrupted":
        signum = getattr(err, "signum", signal.SIGINT)
        raise Interrupted(signum, f"continue with: {continue_command(run.exp.dir, 'pipeline')}") from None
    if not stop.from_peer and isinstance(err, PawError):
        kind: type[PawError] = type(err)
    else:
        kind = PawRuntimeError if stop.exit_code == PawRuntimeError.exit_code else PawError
    failure = kind(
        f"pipeline {run.exp.name}: step {step.number} ({step.title}) failed: {reason}. Finished steps are kept; "
        "fix the cause and re-run with --resume"
    )
    failure.exit_code = stop.exit_code
    raise failure from err
