"""Training objectives, one module each: which data the run reads, which model the adapter goes on, which Trainer
optimises what, and which files are saved beside the adapter. The recipe (``paw.train.recipe``) does the rest the
same way for every objective: schedule, checkpoints, resume, experiment layout and reports.

Each module has the same functions:

    build_data(config, tokenizer) -> (data, warnings)       # the train/val splits and their report
    load_base(resolved, options, data) -> model             # the model the adapter is put on
    auto_class() -> type                                    # its transformers Auto class (weightless checks)
    arguments(kwargs, config) -> TrainingArguments          # the Trainer's arguments (TRL's config for TRL)
    trainer(config, model, tokenizer, data, common) -> Trainer   # a PawTrainerMixin trainer
    save_files(directory, tokenizer, data, config) -> None  # what whoever loads the adapter needs besides it
    reported(config) -> tuple[str, ...]                     # the trainer's per-step metrics kept in the report

Adding an objective is one module and one line in ``REGISTRY``.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

from paw.data.sft import SftDataOptions

if TYPE_CHECKING:
    from paw.config.schema import RunConfig

REGISTRY = {
    "sft": "paw.train.objectives.sft",
    "classification": "paw.train.objectives.classification",
    "dpo": "paw.train.objectives.dpo",
    "kto": "paw.train.objectives.kto",
    "orpo": "paw.train.objectives.orpo",
    "simpo": "paw.train.objectives.simpo",
    "grpo": "paw.train.objectives.grpo",
}


def objective_name(config: RunConfig) -> str:
    """The run's ``training.objective``; SFT with ``peft.task_type: SEQ_CLS`` trains a classifier."""
    if config.training.objective == "sft" and config.peft.task_type == "SEQ_CLS":
        return "classification"
    return config.training.objective


def objective(config: RunConfig) -> ModuleType:
    return importlib.import_module(REGISTRY[objective_name(config)])


def data_options(config: RunConfig) -> SftDataOptions:
    """Where the rows come from and how they are read, split and cut (the ``data`` section)."""
    d = config.data
    return SftDataOptions(
        train_file=d.train_file,
        val_file=d.val_file,
        hub_dataset=d.hub_dataset,
        hub_split=d.hub_split,
        hub_name=d.hub_name,
        hub_val_split=d.hub_val_split,
        columns=tuple(d.columns.items()),
        format=d.format,
        prompt_template=d.prompt_template,
        train_on_prompt=d.train_on_prompt,
        val_ratio=d.val_ratio,
        max_length=d.max_length,
        max_samples=d.max_samples,
        seed=d.seed,
    )
