"""What each kind of pipeline step does: the runners ``paw.pipeline.scheduler`` calls, one per step kind, each
returning the outputs its step record keeps (eval results and per-question samples, a training experiment, a
transferred adapter and, with a refine stage, the refined adapter and its control)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paw.config.pipeline_schema import PipelineConfig
from paw.config.schema import ExperimentConfig, ModelConfig, RunConfig
from paw.experiment.layout import Experiment
from paw.pipeline.ranks import Ranks
from paw.pipeline.steps import Step
from paw.utils.io import read_json, read_json_or_none

if TYPE_CHECKING:  # the transfer package is imported when a transfer step runs
    from paw.transfer.api import TransferOptions

log = logging.getLogger("paw.pipeline")


def run_config(config: PipelineConfig, model: ModelConfig, steps_dir: Path, step: Step) -> RunConfig:
    """The training config of step 2 or 6: the pipeline's sections with one model and one seed."""
    training = config.training.model_copy(update={"seed": step.seed})
    return RunConfig(
        model=model,
        peft=config.peft,
        data=config.data,
        training=training,
        eval=config.eval,
        tracking=config.tracking,
        experiment=ExperimentConfig(root=str(steps_dir), name=step.key, tags=["pipeline"]),
        paths=config.paths,
    )


@dataclass
class PipelineRun:
    """What a step runner needs: the config, where things go, and the records of finished steps."""

    config: PipelineConfig
    exp: Experiment
    records: dict[str, dict[str, Any]]
    ranks: Ranks

    @property
    def steps_dir(self) -> Path:
        return self.exp.dir / "steps"

    def out(self, step: Step) -> Path:
        return self.steps_dir / step.key

    def record_file(self, step: Step) -> Path:
        return self.steps_dir / f"{step.key}.json"

    def model(self, side: str) -> ModelConfig:
        return self.config.source if side == "source" else self.config.target

    def eval_options(self):
        from paw.eval.runner import EvalOptions

        e = self.config.eval
        return EvalOptions(
            limit=e.limit,
            sample_ratio=e.sample_ratio,
            num_fewshot=e.num_fewshot,
            batch_size=e.batch_size,
            log_samples=True,
        )

    def evaluate(
        self, model: ModelConfig, adapter: str | None, output: Path, prefix: str = ""
    ) -> dict[str, Any]:
        from paw.eval.api import evaluate

        results = evaluate(
            self.config.eval.tasks,
            model=model.name_or_path,
            adapter=adapter,
            data_files=self.config.eval.data_files,
            options=self.eval_options(),
            output=output,
            dtype=model.dtype,
            models_dir=self.config.paths.models_dir,
            prefix=prefix,
        )
        return {"results": str(output / f"{prefix}results.json"), "metrics": results["tasks"]}


def _run_eval(run: PipelineRun, step: Step) -> dict[str, Any]:
    adapter = None
    if step.needs is not None:
        adapter = run.records[step.needs.key]["outputs"][step.adapter_output]
    out = run.out(step)
    if run.ranks.main:
        shutil.rmtree(out, ignore_errors=True)  # a stale or partial attempt
    return {**run.evaluate(run.model(step.side), adapter, out), "adapter": adapter}


def _training_mode(run: PipelineRun, step: Step) -> str:
    """On rank 0: ``reuse`` a finished training of these inputs, ``resume`` an interrupted one, or ``fresh``
    (clearing an attempt that stopped before its first checkpoint)."""
    from paw.train.checkpoint import latest_checkpoint

    exp = Experiment.at(run.steps_dir, step.key)
    meta = read_json_or_none(exp.metadata_file) or {}
    if meta.get("status") == "completed" and (exp.final_model / "adapter_config.json").is_file():
        # trained before with these training inputs (_run_one cleared any other): only the eval is new
        log.info(
            "step %s (%s): training done before with the same inputs — reusing it", step.number, step.title
        )
        return "reuse"
    checkpoint = latest_checkpoint(exp.checkpoints) if exp.checkpoints.is_dir() else None
    if checkpoint is not None:  # an interrupted attempt with these inputs
        log.info(
            "step %s (%s): resuming the interrupted training from %s",
            step.number,
            step.title,
            checkpoint.name,
        )
        return "resume"
    if exp.dir.exists():
        shutil.rmtree(exp.dir)  # interrupted before its first checkpoint: start over
    return "fresh"


def _run_train(run: PipelineRun, step: Step) -> dict[str, Any]:
    from paw.train.recipe import run_training

    model = run.model(step.side)
    exp = Experiment.at(run.steps_dir, step.key)
    mode = run.ranks.share(f"{step.key}/mode", lambda: _training_mode(run, step))
    report: dict[str, Any] = {}
    if mode != "reuse":  # every rank trains: one DDP (FSDP, DeepSpeed) run with the recipe's global batch
        config = run_config(run.config, model, run.steps_dir, step)
        resume = (exp, None) if mode == "resume" else None
        command = f"paw pipeline (step {step.key})"
        report = run_training(config, name=step.key, resume=resume, command=command).report
    run.ranks.sync(f"{step.key}/trained")  # rank 0 has saved the adapter the evals below read
    if mode == "reuse" and run.ranks.main:
        report = read_json(exp.results / "training_report.json")
    adapter = str(exp.final_model)
    losses = [s["loss"] for s in report.get("steps", []) if s.get("loss") is not None]
    outputs: dict[str, Any] = {
        "experiment": str(exp.dir),
        "adapter": adapter,
        "first_loss": losses[0] if losses else None,
        "final_loss": losses[-1] if losses else None,
        "resumed_from": report.get("resumed_from"),
    }
    if step.number == 2:  # the source LoRA's own accuracy: did it learn what is being transferred?
        outputs.update(run.evaluate(model, adapter, exp.results, prefix="eval_"))
    return outputs


def transfer_options(config: PipelineConfig) -> TransferOptions:
    """The transfer step's options; align-act and align-fit are fitted on the training data's text unless told
    otherwise."""
    from paw.transfer.api import TransferOptions
    from paw.transfer.methods import CALIBRATED

    t = config.transfer
    calibration = t.calibration_data or (config.data.train_file if t.method in CALIBRATED else None)
    return TransferOptions(
        method=t.method,
        depth=t.depth,
        k=t.k,
        tau=t.similarity_threshold,
        chance_multiple=t.chance_multiple,
        calibration_data=calibration,
    )


def _run_transfer(run: PipelineRun, step: Step) -> dict[str, Any]:
    from paw.transfer.api import transfer

    out = run.out(step)
    shutil.rmtree(out, ignore_errors=True)
    report = transfer(
        adapter=run.records[step.needs.key]["outputs"]["adapter"],
        target=run.config.target.name_or_path,
        output=out / "adapter",
        source=run.config.source.name_or_path,
        options=transfer_options(run.config),
        models_dir=run.config.paths.models_dir,
    )
    counts = {key: report[key] for key in ("units", "transferred", "skipped", "energy_kept_mean")}
    outputs = {
        "adapter": str(out / "adapter"),
        "report": str(out / "adapter" / "transfer_report.md"),
        **counts,
    }
    if run.config.transfer.refine.steps:
        outputs.update(_refine(run, step, out / "adapter"))
    return outputs


def _refine(run: PipelineRun, step: Step, moved: Path) -> dict[str, Any]:
    """The refine stage of step 3: both runs from ``moved`` (the transferred adapter) and the standard init."""
    from paw.pipeline.report import KEPT_ROW
    from paw.transfer.refine import RefineOptions, refine_transferred

    config = run.config
    r = config.transfer.refine
    data_file, settings = config.refine_data()
    options = RefineOptions(
        data_file,
        r.examples,
        r.steps,
        r.learning_rate,
        seed=step.seed,
        models_dir=config.paths.models_dir,
        data_settings=settings,
    )
    source_adapter = run.records[step.needs.key]["outputs"]["adapter"]
    refined = refine_transferred(
        config.source.name_or_path,
        Path(source_adapter),
        moved,
        config.target.name_or_path,
        options,
        r.labels,
        r.temperature,
    )
    labels = refined["labels"]
    return {
        "refined_adapter": refined["transferred_init"]["adapter"],
        "control_adapter": refined["standard_init"]["adapter"],
        "refine_start_scale": refined["start"]["scale"],
        "refine_val_loss": refined["transferred_init"]["val_loss"],
        "control_val_loss": refined["standard_init"]["val_loss"],
        # the run to use, by validation loss: "refined" (step 8's adapter), "control" (step 9's) or None
        "refine_kept": KEPT_ROW.get(refined["kept"] or ""),
        "refine_labels": {
            k: labels[k] for k in ("labels", "rows", "agree_with_data", "temperature") if k in labels
        },
    }


RUNNERS: dict[str, Callable[[PipelineRun, Step], dict[str, Any]]] = {
    "eval_source_base": _run_eval,
    "train_source": _run_train,
    "transfer": _run_transfer,
    "eval_target_base": _run_eval,
    "eval_transferred": _run_eval,
    "train_target": _run_train,
    "eval_target_lora": _run_eval,
    "eval_refined": _run_eval,
    "eval_refine_control": _run_eval,
}
