"""The training recipe, top to bottom: config → model + tokenizer → data → adapter → experiment dir → train →
save. What differs between objectives (SFT, classification: their data, model head, Trainer and saved files) is
in ``paw.train.objectives``; the rest is here once.

One recipe for 1 and N processes (launch with ``accelerate launch -m paw train``); only rank 0 writes
experiment files. Everything that can be checked before training is checked before the experiment dir exists.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paw.config.loader import dump_config
from paw.config.schema import RunConfig
from paw.data.classification import ClassificationData
from paw.data.preference import PreferenceData
from paw.data.sft import SftData
from paw.errors import Interrupted, PawError, PawRuntimeError
from paw.experiment.layout import Experiment, continue_command, default_name
from paw.experiment.lifecycle import (
    RunResult,
    attached,
    console_handler,
    file_handler,
    interruptible,
    mark_failed,
)
from paw.experiment.lock import ExperimentLock
from paw.experiment.metadata import new_metadata, now, update_metadata
from paw.models.adapter_files import name_base
from paw.models.load import LoadOptions, load_tokenizer
from paw.models.peft_setup import add_adapter, check_fits
from paw.models.quantization import QLORA_OPTIMIZER, check_quantization
from paw.models.resolve import resolve_model
from paw.train import checkpoint as ckpt
from paw.train import fingerprint, launch
from paw.train.objectives import objective
from paw.train.schedule import StageSpec, make_scheduler, multi_stage_lr, named_lr_factor, stage_switch_steps
from paw.train.tracking import hosted_trackers, tracker_environment
from paw.utils.hf import quiet_hf
from paw.utils.io import apply_umask, atomic_write_json, atomic_write_text, check_writable
from paw.utils.processes import is_main, world_size

if TYPE_CHECKING:  # transformers is imported only when training starts
    from paw.train.callbacks import ProgressDisplay, RunRecorder
    from paw.utils.hf_types import Model, Tokenizer

log = logging.getLogger("paw.train")


@dataclass
class Prepared:
    """Everything built before the first step."""

    config: RunConfig
    tokenizer: Tokenizer
    data: SftData | ClassificationData | PreferenceData
    model: Model | None = None
    warnings: list[str] = field(default_factory=list)


def load_options(config: RunConfig) -> LoadOptions:
    m = config.model
    return LoadOptions(
        dtype=m.dtype,
        attn_implementation=m.attn_implementation,
        gradient_checkpointing=m.gradient_checkpointing,
        trust_remote_code=m.trust_remote_code,
        revision=m.revision,
        quantization=m.quantization,
    )


def per_device_batch(config: RunConfig) -> int:
    """Each process's micro-batch (derived from training.global_batch_size when set)."""
    t = config.training
    return launch.per_device_batch(
        t.global_batch_size, t.per_device_train_batch_size, t.gradient_accumulation_steps, world_size()
    )


def prepare(config: RunConfig, load_model: bool = True) -> Prepared:
    """Resolve and load the model and tokenizer, build the data, check the adapter's targets. Raises PawError."""
    import torch

    quiet_hf()
    check_quantization(config.model.quantization)  # before any loading
    t = config.training
    per_device_batch(config)  # a global batch the processes cannot share fails here, before loading
    optim = t.passthrough.get("optim") or (QLORA_OPTIMIZER if config.model.quantization != "none" else None)
    launch.check_launch(
        t.passthrough.get("deepspeed"), t.passthrough.get("fsdp"), torch.cuda.is_available(), optim
    )
    resolved = resolve_model(config.model.name_or_path, config.paths.models_dir)
    options = load_options(config)
    tokenizer = load_tokenizer(resolved, options)
    goal = objective(config)
    data, warnings = goal.build_data(config, tokenizer)
    data.report["warnings"] = warnings
    prepared = Prepared(config=config, tokenizer=tokenizer, data=data, warnings=warnings)
    if load_model:
        from transformers import set_seed

        # Seed before the adapter exists: LoRA's A matrices are random, so this makes a run reproducible.
        set_seed(config.training.seed)
        base = goal.load_base(resolved, options, data)
        prepared.model = add_adapter(base, config.peft, config.training.max_steps)
    else:
        check_fits(_empty_model(resolved, options, goal.auto_class()), config.peft)
    return prepared


def _empty_model(resolved, options: LoadOptions, auto_class: type):
    """The model's modules without its weights (for checking adapter targets in --validate-only)."""
    from accelerate import init_empty_weights

    from paw.models.load import load_config

    with init_empty_weights():
        return auto_class.from_config(
            load_config(resolved, options), trust_remote_code=options.trust_remote_code
        )


def lr_function(config: RunConfig):
    """``step -> lr`` for reports; same formulas as the scheduler."""
    t = config.training
    if isinstance(t.schedule, list):
        stages = [StageSpec(s.steps, s.lr) for s in t.schedule]
        return lambda step: multi_stage_lr(step, stages)
    total = t.max_steps or 0
    return lambda step: t.learning_rate * named_lr_factor(step, t.schedule, total, t.warmup_steps)


LOG_LINES = 30  # log lines per run when training.logging_steps is unset


def default_logging_steps(total_steps: int | None) -> int:
    """Every step for runs of up to LOG_LINES steps, else about LOG_LINES evenly spaced lines."""
    return max(1, -(-(total_steps or 1) // LOG_LINES))


def training_args(config: RunConfig, output_dir: str, total_steps: int | None = None):
    """The objective's Trainer arguments (TRL's SFTConfig, transformers' TrainingArguments) from the config;
    ``total_steps`` (known or estimated) sizes the default logging interval."""
    import torch

    t = config.training
    base_lr = t.schedule[0].lr if isinstance(t.schedule, list) else t.learning_rate
    dtype = config.model.dtype
    on_gpu = torch.cuda.is_available()
    per_device = per_device_batch(config)
    kwargs: dict[str, Any] = {
        "output_dir": output_dir,
        "max_steps": t.max_steps if t.max_steps is not None else -1,
        "num_train_epochs": t.num_train_epochs,
        "learning_rate": base_lr,
        "per_device_train_batch_size": per_device,
        "per_device_eval_batch_size": per_device,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "logging_steps": t.logging_steps or default_logging_steps(t.max_steps or total_steps),
        "logging_first_step": True,
        "seed": t.seed,
        "save_strategy": "no",
        "eval_strategy": "steps" if t.eval_steps else "no",
        "eval_steps": t.eval_steps,
        "report_to": hosted_trackers(config.tracking.backends),
        "run_name": Path(output_dir).parent.name,  # the experiment name, as hosted trackers show it
        "disable_tqdm": True,
        "include_num_input_tokens_seen": "non_padding",
        "bf16": dtype == "bf16" or (dtype == "auto" and on_gpu and torch.cuda.is_bf16_supported()),
        "fp16": dtype == "fp16",
        "gradient_checkpointing": config.model.gradient_checkpointing,
        "use_cpu": not on_gpu,
        "dataloader_num_workers": 0,
    }
    if config.model.quantization != "none":
        kwargs["optim"] = QLORA_OPTIMIZER  # QLoRA's paged 8-bit AdamW, unless training.optim says otherwise
    kwargs.update(t.passthrough)
    try:
        return objective(config).arguments(kwargs, config)
    except (ValueError, TypeError) as err:
        raise PawError(f"training: {err}") from None


def _log_handlers(exp: Experiment | None, live_bar: bool) -> list[tuple[logging.Logger, logging.Handler]]:
    """Progress lines on the console (only warnings under a live bar, and on ranks other than 0); everything to
    the experiment's logs/train_<time>.log."""
    logger = logging.getLogger("paw")
    logger.setLevel(logging.INFO)
    pairs = [(logger, console_handler(logging.WARNING if live_bar or exp is None else logging.INFO))]
    if exp is not None:
        pairs.append((logger, file_handler(exp.logs / f"train_{time.strftime('%Y%m%d-%H%M%S')}.log")))
    return pairs


TrainResult = RunResult  # the name paw.api documents


def run_training(
    config: RunConfig,
    *,
    name: str | None = None,
    config_stem: str = "run",
    resume: tuple[Experiment, Path | None] | None = None,
    dry_run: bool = False,
    command: str = "paw train",
    allow_changes: bool = False,
) -> RunResult:
    """Train a PEFT adapter as the config says and write the experiment dir.

    Args:
        config: the validated run config.
        name: experiment name (overrides ``experiment.name``).
        config_stem: used for the default name ``<stem>_<timestamp>``.
        resume: (experiment, checkpoint or None for the latest) to continue instead of starting anew.
        dry_run: build everything up to the first step, print the plan, write nothing.
        command: the command line, recorded in metadata.json.
        allow_changes: resume even where the run's inputs changed since it started (``--resume-changed``).

    Raises:
        PawError: bad input, or another process writes the experiment (exit 2); NonFiniteLossError: the loss
        diverged (exit 1); Interrupted: SIGINT/SIGTERM, recorded as resumable (exit 130/143).
    """
    main = is_main()
    if resume is not None:
        exp, checkpoint = resume
    else:
        exp = Experiment.at(
            config.experiment.root, name or config.experiment.name or default_name(config_stem)
        )
        checkpoint = None
        # fail before any loading, not after; rank 0 alone: it creates the dir, which the others must not see as taken
        if main:
            exp.ensure_new()
            check_writable(exp.root, "experiment.root")
    hosted_trackers(config.tracking.backends)  # a missing tracker package fails before anything is written
    with ExitStack() as held:
        changes: list[str] = []
        if resume is not None and main and not dry_run:
            held.enter_context(ExperimentLock(exp.dir, command))  # a second writer fails before any loading
            changes = fingerprint.check_resume(exp.dir, config, allow_changes)
        prepared = prepare(config)
        plan = training_plan(config, prepared)
        if dry_run:
            return RunResult(None, "dry-run", plan)
        if resume is None and main:
            exp.create()
            held.enter_context(ExperimentLock(exp.dir, command))
            atomic_write_text(exp.config_file, dump_config(config))
            fingerprint.record(exp.dir, config)
        if main:
            meta = new_metadata(exp.name, command, config.training.seed)
            if resume is not None:
                meta = {"resumed": now(), "status": "running", "error": None, "finished": None}
                meta |= {"resume_changed": changes} if changes else {}
            update_metadata(exp.metadata_file, **meta)
            atomic_write_json(exp.results / "data_validation.json", prepared.data.report)
        return RunResult(exp, "completed", _run_recorded(config, prepared, exp, checkpoint, plan))


def _run_recorded(
    config: RunConfig, prepared: Prepared, exp: Experiment, checkpoint: Path | None, plan: dict[str, Any]
) -> dict[str, Any]:
    """``_train`` with the run's lifecycle around it: logging, SIGINT/SIGTERM recorded as a resumable
    interruption, any other failure recorded as failed; metadata.json always says which."""
    main = is_main()
    with attached(*_log_handlers(exp if main else None, sys.stderr.isatty() and main)), interruptible(main):
        for warning in prepared.warnings:
            log.warning("warning: %s", warning)
        try:
            return _train(config, prepared, exp, checkpoint, plan)
        except KeyboardInterrupt as err:
            if not main:
                raise
            signum = getattr(err, "signum", signal.SIGINT)
            update_metadata(
                exp.metadata_file,
                status="interrupted",
                finished=now(),
                error=signal.Signals(signum).name,
                resume_command=continue_command(exp.dir),
            )
            raise Interrupted(signum, f"continue with: {continue_command(exp.dir)}") from None
        except Diverged:
            raise  # recorded as diverged where it was found
        except BaseException as err:
            if main:
                mark_failed(exp.metadata_file, err)
            raise


def training_plan(config: RunConfig, prepared: Prepared) -> dict[str, Any]:
    t = config.training
    trainable, total = prepared.model.get_nb_trainable_parameters()
    policy = ckpt.CheckpointPolicy(t.save.start_step, t.save.every, t.save.keep_last)
    steps = t.max_steps
    return {
        "model": config.model.name_or_path,
        "peft": config.peft.summary(),
        "trainable_params": trainable,
        "total_params": total,
        "train_examples": len(prepared.data.train.examples),
        "val_examples": len(prepared.data.val.examples) if prepared.data.val else 0,
        "max_steps": steps,
        "processes": world_size(),
        "global_batch": per_device_batch(config) * t.gradient_accumulation_steps * world_size(),
        "schedule": [s.model_dump() for s in t.schedule] if isinstance(t.schedule, list) else t.schedule,
        "checkpoints_planned": len(policy.planned(steps)) if steps else None,
    }


def _train(
    config: RunConfig, prepared: Prepared, exp: Experiment, checkpoint: Path | None, plan: dict[str, Any]
):
    """Set up the trainer, train (from ``checkpoint`` or the newest intact one), then save and report."""
    from paw.train.callbacks import ProgressDisplay, RunRecorder

    recorder = RunRecorder(lr_function(config), objective(config).reported(config))
    progress = ProgressDisplay()
    trainer = _setup_trainer(config, prepared, exp, recorder, progress)
    checkpoint = _resume_point(exp, checkpoint)
    ckpt.clear_staging(exp.checkpoints)
    if checkpoint is not None:
        log.info("resuming from %s", checkpoint)
    log.info(
        "training %s: %s steps, global batch %s, %s trainable params",
        exp.name,
        plan["max_steps"],
        plan["global_batch"],
        plan["trainable_params"],
    )
    started = time.perf_counter()
    try:
        with tracker_environment(config.tracking.backends, config.tracking.project, exp.dir):
            output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    finally:
        progress.close()
    return _finish(
        config, prepared, exp, trainer, recorder, output, time.perf_counter() - started, checkpoint, plan
    )


def _setup_trainer(
    config: RunConfig, prepared: Prepared, exp: Experiment, recorder: RunRecorder, progress: ProgressDisplay
) -> Any:
    """The Trainer for this run: its callbacks, arguments, scheduler, checkpoint policy, data and collator."""
    from transformers import PrinterCallback

    from paw.train.callbacks import SavePolicyCallback

    t = config.training
    lr_at = recorder.lr_at_step
    stages = _stages(config)
    policy = ckpt.CheckpointPolicy(t.save.start_step, t.save.every, t.save.keep_last)
    callbacks = [recorder, SavePolicyCallback(policy), progress]
    callbacks += config.peft.callbacks(prepared.model)
    if "tensorboard" in config.tracking.backends and is_main():
        from torch.utils.tensorboard import SummaryWriter
        from transformers.integrations import TensorBoardCallback

        callbacks.append(TensorBoardCallback(tb_writer=SummaryWriter(log_dir=str(exp.tensorboard))))
    rows = len(prepared.data.train.examples)
    per_step = per_device_batch(config) * t.gradient_accumulation_steps * world_size()
    args = training_args(config, str(exp.checkpoints), -(-rows // per_step) * int(t.num_train_epochs or 1))
    base_lr = stages[0].lr if stages else t.learning_rate

    def checkpoint_info(step: int) -> dict[str, Any]:
        last = recorder.steps[-1] if recorder.steps else {}
        return {"lr": lr_at(step), "loss": last.get("loss"), "time": now(), "max_steps": args.max_steps}

    common = {
        "model": prepared.model,
        "args": args,
        "processing_class": prepared.tokenizer,
        "callbacks": callbacks,
        "scheduler_factory": lambda opt: make_scheduler(
            opt, base_lr, t.schedule if not stages else "constant", args.max_steps, t.warmup_steps, stages
        ),
        "policy": policy,
        "checkpoint_info": checkpoint_info,
    }
    trainer = objective(config).trainer(config, prepared.model, prepared.tokenizer, prepared.data, common)
    trainer.remove_callback(PrinterCallback)
    return trainer


def _stages(config: RunConfig) -> list[StageSpec]:
    schedule = config.training.schedule
    return [StageSpec(s.steps, s.lr) for s in schedule] if isinstance(schedule, list) else []


def _finish(
    config: RunConfig,
    prepared: Prepared,
    exp: Experiment,
    trainer: Any,
    recorder: RunRecorder,
    output: Any,
    elapsed: float,
    checkpoint: Path | None,
    plan: dict[str, Any],
) -> dict[str, Any]:
    """After the last step: the final evaluation, the adapter, the reports and the run's status."""
    import torch
    from transformers.integrations import TensorBoardCallback

    from paw.train.report import peak_memory_mb, write_reports

    # TensorBoard's writer closed with training; a late evaluate() must not open a new one elsewhere.
    trainer.remove_callback(TensorBoardCallback)
    evaluated_last = bool(recorder.evals) and recorder.evals[-1]["step"] == trainer.state.global_step
    final_eval = recorder.evals[-1] if evaluated_last else (trainer.evaluate() if prepared.data.val else {})
    if not is_main():
        return {}
    _save_final_model(trainer, prepared, exp)
    report = write_reports(
        exp,
        config=config,
        recorder=recorder,
        log_history=trainer.state.log_history,
        train_metrics=output.metrics,
        final_eval=final_eval,
        checkpoints=trainer.checkpoints_written,
        switches=stage_switch_steps(_stages(config)),
        seconds=elapsed,
        peak_mb=peak_memory_mb(torch),
        resumed_from=str(checkpoint) if checkpoint else None,
        plan=plan,
    )
    stalled = stalled_reason(report.get("steps") or [])
    status = "diverged" if stalled else "completed"
    update_metadata(
        exp.metadata_file, status=status, finished=now(), train_seconds=round(elapsed, 2), error=stalled
    )
    if stalled:
        raise Diverged(f"training {exp.name} did not learn: {stalled}; its files are kept in {exp.dir}")
    log.info("done: %s", exp.dir)
    return report


def _resume_point(exp: Experiment, named: Path | None) -> Path | None:
    """The checkpoint to continue from: the one named (refused if damaged), else the newest intact one (each
    damaged newer one named in a warning); None for a fresh run."""
    if named is not None:
        if problem := ckpt.damage(named):
            raise PawError(f"{named}: damaged ({problem}); resume from another checkpoint or the experiment")
        return named
    if not exp.checkpoints.is_dir():
        return None
    found, skipped = ckpt.latest_intact(exp.checkpoints)
    for path, problem in skipped:
        log.warning("warning: %s is damaged (%s); not resuming from it", path.name, problem)
    if skipped and found is None:
        damaged = "; ".join(f"{path.name}: {problem}" for path, problem in skipped)
        raise PawError(f"{exp.dir}: every checkpoint is damaged ({damaged}); nothing to resume from")
    return found


STALL_STEPS = 3  # logged steps in a row with no gradient at all


class Diverged(PawRuntimeError):
    """The run finished without learning; metadata.json already says ``diverged`` (exit 1)."""


def stalled_reason(steps: list[dict[str, Any]]) -> str | None:
    """Why a run that finished cannot have learned (None: it may have): the gradient norm was exactly zero on the
    last logged steps, so nothing moved however long it trained (a frozen adapter, a loss cut off from it)."""
    tail = steps[-STALL_STEPS:]
    if len(tail) < STALL_STEPS or any(s.get("grad_norm") is None or s["grad_norm"] != 0 for s in tail):
        return None
    reason = f"the gradient norm was 0 on the last {STALL_STEPS} logged steps (loss stuck at {tail[-1].get('loss')})"
    if all(s.get("frac_reward_zero_std") == 1 for s in tail):  # GRPO: no group told its completions apart
        reason += (
            f"; every completion of a prompt got the same reward (mean reward {tail[-1].get('reward')}), so none "
            "was preferred: start from a fine-tuned adapter (peft.init_adapter) or add a reward that gives partial "
            "credit"
        )
    return reason


def _save_final_model(trainer, prepared: Prepared, exp: Experiment) -> None:
    """Adapter + tokenizer + prompt spec, written to a temp dir and renamed into place."""
    import shutil

    staging = exp.final_model.with_name(".final_model.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    trainer.save_model(str(staging))
    (staging / "training_args.bin").unlink(
        missing_ok=True
    )  # a pickle; the experiment's config.yaml says it all
    (staging / "README.md").unlink(missing_ok=True)
    if (staging / "adapter_config.json").is_file():
        model = prepared.config.model.name_or_path
        name_base(
            staging, resolve_model(model, prepared.config.paths.models_dir, build_tiny=False).portable_name
        )
    prepared.tokenizer.save_pretrained(str(staging))
    objective(prepared.config).save_files(staging, prepared.tokenizer, prepared.data, prepared.config)
    apply_umask(staging)
    shutil.rmtree(exp.final_model, ignore_errors=True)
    staging.rename(exp.final_model)
