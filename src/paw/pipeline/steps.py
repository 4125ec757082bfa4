"""The pipeline's steps and the fingerprint of each step's inputs.

Steps (numbers as ``--steps`` takes them): 1 eval source base, 2 train source LoRA (and eval it), 3 transfer it
to the target, 4 eval target base, 5 eval transferred adapter, 6 train target LoRA (the same-recipe baseline),
7 eval target LoRA; with a refine stage (``transfer.refine.steps`` > 0, run inside step 3) also 8 eval refined
adapter and 9 eval its same-budget control. Every step but 1 and 4 runs once per seed.

A step's fingerprint hashes what determines its output: its config section(s), the model (content hash of a local
dir, name and version of a built-in), the data files' bytes, paw's version and the fingerprints of the steps it
reads. A finished step whose recorded fingerprint equals the new one is skipped; any change re-runs it and, via
the chain, everything downstream.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paw
from paw.config.pipeline_schema import PipelineConfig
from paw.data.digest import file_digest
from paw.models.identity import model_identity

TITLES = {
    1: "eval source base",
    2: "train source LoRA",
    3: "transfer to target",
    4: "eval target base",
    5: "eval transferred adapter",
    6: "train target LoRA",
    7: "eval target LoRA",
    8: "eval refined adapter",
    9: "eval refine control",
}
KINDS = {
    1: "eval_source_base",
    2: "train_source",
    3: "transfer",
    4: "eval_target_base",
    5: "eval_transferred",
    6: "train_target",
    7: "eval_target_lora",
    8: "eval_refined",
    9: "eval_refine_control",
}
SEEDED = (2, 3, 5, 6, 7, 8, 9)
NEEDS = {3: 2, 5: 3, 7: 6, 8: 3, 9: 3}  # step -> the step (same seed) whose output it reads
# eval step -> the key of its adapter in the needed step's outputs (every other eval step: "adapter")
ADAPTER_OUTPUT = {8: "refined_adapter", 9: "control_adapter"}
REFINE_STEPS = (8, 9)  # planned only with a refine stage


@dataclass(frozen=True)
class Step:
    number: int
    seed: int | None = None

    @property
    def kind(self) -> str:
        return KINDS[self.number]

    @property
    def key(self) -> str:
        return f"{self.number}_{self.kind}" + (f"-seed{self.seed}" if self.seed is not None else "")

    @property
    def title(self) -> str:
        return TITLES[self.number] + (f" (seed {self.seed})" if self.seed is not None else "")

    @property
    def needs(self) -> Step | None:
        return Step(NEEDS[self.number], self.seed) if self.number in NEEDS else None

    @property
    def adapter_output(self) -> str:
        """The key of the needed step's outputs that holds the adapter this (eval) step scores."""
        return ADAPTER_OUTPUT.get(self.number, "adapter")

    @property
    def side(self) -> str:
        return "source" if self.number in (1, 2) else "target"


def seeds(config: PipelineConfig) -> list[int]:
    return [config.training.seed + i for i in range(config.pipeline.seeds)]


def plan(config: PipelineConfig) -> list[Step]:
    """Every step in run order: 1, 2 (each seed), 3 (each seed), 4, 5, 6, 7, and 8, 9 with a refine stage."""
    out: list[Step] = []
    for number in TITLES:
        if number in REFINE_STEPS and not config.transfer.refine.steps:
            continue
        out += [Step(number, s) for s in seeds(config)] if number in SEEDED else [Step(number)]
    return out


def parse_steps(text: str, config: PipelineConfig | None = None) -> set[int]:
    """``"1,3,5"`` or ``"2-4"`` → step numbers (8 and 9 only where ``config`` has a refine stage)."""
    from paw.errors import PawError

    numbers: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        try:
            numbers |= set(range(int(low), int(high or low) + 1))
        except ValueError:
            raise PawError(f"--steps '{text}': expected numbers like 1,3,5 or 2-4") from None
    if not numbers or not numbers <= set(TITLES):
        raise PawError(
            f"--steps '{text}': steps are 1-9 ({'; '.join(f'{n} {t}' for n, t in TITLES.items())}; 8 and 9 "
            "with transfer.refine.steps > 0)"
        )
    refine = sorted(numbers & set(REFINE_STEPS))
    if refine and config is not None and not config.transfer.refine.steps:
        raise PawError(
            f"--steps '{text}': step {refine[0]} ({TITLES[refine[0]]}) runs only with a refine stage; set "
            "transfer.refine.steps"
        )
    return numbers


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _data_identity(config: PipelineConfig) -> dict[str, Any]:
    data = config.data.model_dump(mode="json")
    for key in ("train_file", "val_file"):
        if data.get(key):
            data[f"{key}_sha256"] = file_digest(data[key])
    return data


def _eval_identity(config: PipelineConfig) -> dict[str, Any]:
    evals = config.eval.model_dump(mode="json", exclude={"batch_size"})  # batch size does not change scores
    evals["data_files"] = {task: file_digest(path) for task, path in config.eval.data_files.items()}
    return evals


def _transfer_identity(config: PipelineConfig) -> dict[str, Any]:
    """The transfer section with the bytes of the files it reads (calibration and refine data)."""
    transfer = config.transfer.model_dump(mode="json")
    if config.transfer.calibration_data:
        transfer["calibration_data_sha256"] = file_digest(config.transfer.calibration_data)
    if config.transfer.refine.steps:
        transfer["refine"]["data_sha256"] = file_digest(config.refine_data()[0])
    return transfer


def train_key(step: Step) -> str:
    """Key of a training step's training-only fingerprint (step 2 also evaluates; its eval settings must not
    force a retrain or a new transfer)."""
    return f"{step.key}:train"


def fingerprints(config: PipelineConfig, steps: list[Step]) -> dict[str, str]:
    """Fingerprint of every step (upstream steps first, as ``plan`` orders them), plus ``<key>:train`` for the
    trainings: what the trained adapter depends on, which is what downstream steps read."""
    models_dir = config.paths.models_dir
    source = model_identity(config.source, models_dir)
    target = model_identity(config.target, models_dir)
    out: dict[str, str] = {}
    for step in steps:
        model = source if step.side == "source" else target
        inputs: dict[str, Any] = {"paw": paw.__version__, "step": step.kind, "model": model}
        if step.needs is not None:
            inputs["upstream"] = out.get(train_key(step.needs), out[step.needs.key])
        if step.kind.startswith("train"):
            training = config.training.model_dump(mode="json", exclude={"logging_steps"})
            training["seed"] = step.seed
            inputs.update(
                peft=config.peft.model_dump(mode="json"), data=_data_identity(config), training=training
            )
            out[train_key(step)] = _digest(inputs)
            if step.number == 2:  # step 2 also evaluates the source LoRA
                inputs["eval"] = _eval_identity(config)
        elif step.kind == "transfer":
            inputs.update(source=source, transfer=_transfer_identity(config))
        else:
            inputs["eval"] = _eval_identity(config)
        out[step.key] = _digest(inputs)
    return out


# The step outputs that are paths: kept relative to the experiment dir in the record files, so an experiment
# folder moved or copied elsewhere still resumes and rebuilds its report; absolute in memory.
PATH_OUTPUTS = ("results", "experiment", "adapter", "report", "refined_adapter", "control_adapter")


def _with_paths(record: dict[str, Any], change) -> dict[str, Any]:
    outputs = record.get("outputs")
    if not outputs:
        return record
    moved = {k: change(v) if k in PATH_OUTPUTS and isinstance(v, str) else v for k, v in outputs.items()}
    return {**record, "outputs": moved}


def portable(record: dict[str, Any], root: Path) -> dict[str, Any]:
    """``record`` as its file keeps it: output paths under ``root`` relative to it."""
    base = root.absolute()

    def relative(value: str) -> str:
        path = Path(value).absolute()
        return str(path.relative_to(base)) if path.is_relative_to(base) else value

    return _with_paths(record, relative)


def located(record: dict[str, Any], root: Path) -> dict[str, Any]:
    """``record`` as read from its file, output paths made absolute again (an absolute one, as older paw wrote
    them, stays as it is)."""
    return _with_paths(record, lambda value: str(root / value))
