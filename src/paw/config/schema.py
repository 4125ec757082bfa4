"""The run config: one pydantic model per YAML section, every field described.

Unknown keys are errors (``extra="forbid"``), except in ``training``, which also takes any
``transformers.TrainingArguments`` field by its own name (checked against a table, see
``training_fields.py``). Cross-field checks live next to the section they concern.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from paw.config.objectives import OBJECTIVE_HELP, SECTION_OF, GrpoConfig, PreferenceConfig
from paw.config.peft_methods import PeftField, default_section
from paw.config.section import NoBoolNumbers, Section
from paw.config.training_fields import check_passthrough


class ModelConfig(Section):
    name_or_path: str = Field(
        description="Local dir, hub id, alias (e.g. 'qwen2.5-0.5b', see paw/models/aliases.yaml) "
        "or a built-in tiny model 'paw-tiny/<qwen2|llama|gemma2|phi3>', optionally with a derived variant "
        "'-upgrade', '-deep' or '-rotated' (see paw/models/tiny_variants.py), or a stand-in of a published "
        "model 'paw-shape/<name>[@<layers>]' (its shape and real tokenizer, random weights; see paw models)."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) to load.")
    dtype: Literal["auto", "bf16", "fp16", "fp32"] = Field(
        "auto", description="Weight dtype; 'auto' picks bf16 on GPUs that support it, else fp32."
    )
    attn_implementation: Literal["auto", "eager", "sdpa", "flash_attention_2"] = Field(
        "auto", description="Attention kernel; 'auto' uses sdpa except where a family needs eager (Gemma-2)."
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward to save memory."
    )
    trust_remote_code: bool = Field(
        False, description="Run model code shipped with the checkpoint. Off by default."
    )
    quantization: Literal["none", "4bit", "8bit"] = Field(
        "none", description="Load the base model quantized with bitsandbytes (QLoRA); needs CUDA."
    )


class DataConfig(Section):
    train_file: str | None = Field(
        None,
        description="Training data: a .jsonl/.json/.csv/.parquet file, or a built-in dataset "
        "'paw-synth/<name>' (see paw/data/builtin.py).",
    )
    val_file: str | None = Field(
        None, description="Validation data file; if unset, val_ratio of train is held out."
    )
    hub_dataset: str | None = Field(None, description="A hub dataset id, used when train_file is unset.")
    hub_split: str = Field("train", description="Split of hub_dataset to train on.")
    hub_name: str | None = Field(
        None, description="Configuration of hub_dataset (e.g. 'mrpc' of nyu-mll/glue)."
    )
    hub_val_split: str | None = Field(
        None,
        description="Split of hub_dataset to validate on (e.g. 'validation'); else val_file / val_ratio.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Rename fields as rows are read, source -> paw name (e.g. {query: instruction, response: "
        "output} for MetaMathQA).",
    )
    format: Literal["auto", "alpaca", "messages", "prompt_completion", "text", "classification"] = Field(
        "auto",
        description="Row format: alpaca (instruction/input/output), messages (chat), prompt_completion "
        "(prompt/completion, used verbatim: e.g. a benchmark's own prompt), text, classification (text or a "
        "sentence pair and a label; with peft.task_type SEQ_CLS); auto detects.",
    )
    text_fields: list[str] | None = Field(
        None,
        description="classification: the text field, or the two of a sentence pair; unset: detected "
        "(sentence1/sentence2, question/sentence, text, sentence, ...).",
    )
    label_field: str = Field(
        "label", description="classification: the label field (integers 0..K-1 or strings)."
    )
    prompt_template: Literal["alpaca", "chat"] = Field(
        "alpaca",
        description="How alpaca rows become a prompt: the Alpaca prompt, or the tokenizer's chat template.",
    )
    train_on_prompt: bool = Field(
        False, description="Also put the prompt tokens in the loss (default: completion only)."
    )
    val_ratio: float = Field(
        0.0, ge=0, lt=1, description="Fraction of train held out for validation (with seed)."
    )
    max_length: int = Field(1024, ge=8, description="Examples longer than this (in tokens) are truncated.")
    packing: bool = Field(
        False,
        description="Pack several examples per row (best-fit, up to max_length) with attention kept inside each "
        "example: fewer pad tokens computed (causal LM only).",
    )
    max_samples: int | None = Field(
        None, ge=1, description="Use at most this many training rows (after shuffling)."
    )
    seed: int = Field(42, description="Seed of the train/val split and of max_samples sampling.")

    @model_validator(mode="after")
    def _has_source(self) -> DataConfig:
        if self.train_file is None and self.hub_dataset is None:
            raise ValueError("set data.train_file (a local file) or data.hub_dataset (a hub dataset id)")
        return self


class Stage(Section):
    steps: int = Field(ge=1, description="Optimizer steps in this stage.")
    lr: float = Field(gt=0, description="Learning rate held constant during this stage.")


class SavePolicy(Section):
    start_step: int = Field(0, ge=0, description="No checkpoint at or before this step.")
    every: int | None = Field(
        None, ge=1, description="Save every N steps after start_step; unset: no checkpoints."
    )
    keep_last: int | None = Field(
        None, ge=1, description="Keep only the newest N checkpoints; unset: keep all."
    )


NAMED_SCHEDULES = ("constant", "linear", "cosine")


class TrainingConfig(NoBoolNumbers):
    """paw's training keys; any other key must be a ``transformers.TrainingArguments`` field."""

    model_config = ConfigDict(extra="allow", validate_assignment=True)

    objective: Literal["sft", "dpo", "kto", "orpo", "simpo", "grpo"] = Field(
        "sft", description=OBJECTIVE_HELP
    )
    max_steps: int | None = Field(
        None, ge=1, description="Optimizer steps; for a multi-stage schedule, the sum of stages."
    )
    num_train_epochs: float = Field(1.0, gt=0, description="Epochs, used when max_steps is unset.")
    learning_rate: float = Field(
        2e-4, gt=0, description="Peak learning rate (for multi-stage, the first stage's)."
    )
    schedule: Literal["constant", "linear", "cosine"] | list[Stage] = Field(
        "constant",
        description="LR schedule: constant, linear, cosine (each after warmup_steps), or a list of "
        "stages [{steps, lr}, ...] held constant in turn.",
    )
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps (named schedules).")
    per_device_train_batch_size: int = Field(4, ge=1, description="Micro-batch size per device.")
    global_batch_size: int | None = Field(
        None,
        ge=1,
        description="Batch per optimizer step over all processes; when set, the per-device micro-batch is "
        "derived from it (global / (processes × gradient_accumulation_steps)), so one config fits 1 or N GPUs.",
    )
    gradient_accumulation_steps: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    save: SavePolicy = Field(default_factory=SavePolicy, description="Checkpoint policy.")
    eval_steps: int | None = Field(None, ge=1, description="Evaluate on the validation split every N steps.")
    logging_steps: int | None = Field(
        None,
        ge=1,
        description="Log loss/lr/grad-norm every N steps; unset: ~30 lines a run (short runs: every step).",
    )
    seed: int = Field(42, description="Seed of initialisation, dropout and data order.")

    @model_validator(mode="before")
    @classmethod
    def _check_passthrough(cls, data: Any) -> Any:
        if isinstance(data, dict):
            check_passthrough({k: v for k, v in data.items() if k not in cls.model_fields}, cls.model_fields)
        return data

    @model_validator(mode="after")
    def _stages_match_steps(self) -> TrainingConfig:
        if isinstance(self.schedule, list):
            total = sum(stage.steps for stage in self.schedule)
            if self.max_steps is None:
                self.max_steps = total
            elif self.max_steps != total:
                raise ValueError(
                    f"max_steps is {self.max_steps} but the schedule's stages add up to {total} steps"
                )
        return self

    @property
    def passthrough(self) -> dict[str, Any]:
        """TrainingArguments fields given by the user beyond paw's own keys."""
        return dict(self.model_extra or {})


class EvalConfig(Section):
    """Benchmark settings read by ``paw eval`` and the pipeline (``paw train`` evaluates the val split only)."""

    tasks: list[str] = Field(default_factory=list, description="Benchmark tasks for paw eval / the pipeline.")
    data_files: dict[str, str] = Field(default_factory=dict, description="task -> local data file.")
    batch_size: int | Literal["auto"] = Field(
        8, description="Eval batch size, or 'auto' (sized to the free memory; see paw eval --help)."
    )
    limit: int | None = Field(None, ge=1, description="Evaluate at most this many examples per task.")
    sample_ratio: float | None = Field(
        None, gt=0, le=1, description="Evaluate this fraction of each task (seeded)."
    )
    num_fewshot: int = Field(0, ge=0, description="Few-shot examples in the prompt.")


class TrackingConfig(Section):
    backends: list[Literal["tensorboard", "wandb", "swanlab", "mlflow"]] = Field(
        default_factory=lambda: ["tensorboard"],
        description="Where metrics go; TensorBoard lives in the experiment dir.",
    )
    project: str = Field("paw", description="Project name for hosted trackers.")


class ExperimentConfig(Section):
    root: str = Field("experiments", description="Directory holding all experiments.")
    name: str | None = Field(None, description="Experiment dir name; default '<config name>_<timestamp>'.")
    tags: list[str] = Field(default_factory=list, description="Free-form labels stored in metadata.json.")


class PathsConfig(Section):
    models_dir: str | None = Field(
        None, description="Local model store; aliases resolve here before the hub."
    )
    data_dir: str | None = Field(
        None, description="Relative data paths resolve here (else against the current directory)."
    )


class RunConfig(Section):
    """A whole run: the YAML file after ``extends``, profile and overrides are applied."""

    model: ModelConfig
    peft: PeftField = Field(default_factory=default_section)
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    preference: PreferenceConfig = Field(
        default_factory=PreferenceConfig,
        description="Preference tuning options (training.objective dpo, kto, orpo, simpo).",
    )
    grpo: GrpoConfig = Field(
        default_factory=GrpoConfig, description="GRPO options (training.objective grpo)."
    )
    eval: EvalConfig = Field(default_factory=EvalConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)

    @model_validator(mode="after")
    def _task_fits_the_data(self) -> RunConfig:
        classification = self.peft.task_type == "SEQ_CLS"
        if classification and self.data.format not in ("auto", "classification"):
            raise ValueError(
                f"data.format: peft.task_type SEQ_CLS trains a classifier on labelled text; format "
                f"'{self.data.format}' is for causal LM training (use classification)"
            )
        if self.data.packing and (classification or self.peft.virtual_tokens):
            what = "sequence classification" if classification else self.peft.title
            raise ValueError(f"data.packing: not available with {what} (it needs one example per row)")
        if self.data.format == "classification" and not classification:
            raise ValueError("peft.task_type: data.format classification needs peft.task_type: SEQ_CLS")
        return self

    @model_validator(mode="after")
    def _eval_has_data(self) -> RunConfig:
        d = self.data
        if self.training.eval_steps and not (
            d.val_file or d.val_ratio or (d.hub_dataset and d.hub_val_split)
        ):
            raise ValueError(
                "training.eval_steps: there is no validation split to evaluate; set data.val_file, data.val_ratio "
                "or data.hub_val_split, or unset training.eval_steps"
            )
        return self

    @model_validator(mode="after")
    def _objective_fits_the_run(self) -> RunConfig:
        objective = self.training.objective
        for section in ("preference", "grpo"):
            changed = getattr(self, section) != type(getattr(self, section))()
            if changed and SECTION_OF.get(objective) != section:
                users = " or ".join(k for k, v in SECTION_OF.items() if v == section)
                raise ValueError(
                    f"{section}: read only with training.objective {users}, and the objective is {objective}"
                )
        if objective == "sft":
            return self
        if self.peft.task_type == "SEQ_CLS":
            raise ValueError(
                f"peft.task_type: SEQ_CLS trains a classifier; training.objective {objective} needs CAUSAL_LM"
            )
        if self.data.packing:
            raise ValueError(f"data.packing: SFT only (training.objective is {objective})")
        if self.data.format not in ("auto",):
            raise ValueError(
                f"data.format: training.objective {objective} reads its own rows (see docs/objectives.md); "
                "leave data.format at auto"
            )
        if SECTION_OF[objective] == "preference":
            self.preference.check_for(objective)
        return self

    @model_validator(mode="after")
    def _method_fits_the_run(self) -> RunConfig:
        self.peft.fits_run(self.training.max_steps, self.model.gradient_checkpointing)
        return self
