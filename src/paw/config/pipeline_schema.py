"""The pipeline config: the run sections of a training config, a ``source`` and a ``target`` model instead of
``model``, and the ``transfer`` and ``pipeline`` sections (see ``paw pipeline``).

Both trainings (source LoRA, target LoRA) use the same ``peft``/``data``/``training`` sections, so the target
LoRA is the same-recipe baseline the transferred adapter is measured against.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from paw.config.peft_methods import PeftField, default_section
from paw.config.schema import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    PathsConfig,
    TrackingConfig,
    TrainingConfig,
)
from paw.config.section import Section

# How the pipeline's rows become tokens: the refine trains on its data the same way, whatever file it reads.
REFINE_TEXT_SETTINGS = ("prompt_template", "train_on_prompt", "max_length")


class RefineConfig(Section):
    """The transfer's refine stage: a short LoRA fine-tune of the target from the moved adapter, beside its
    same-budget control from the standard init (``paw transfer --refine-data``); steps 8 and 9 evaluate both."""

    steps: int = Field(
        0, ge=0, description="Optimizer steps of each refine run; 0 (the default) runs no refine stage."
    )
    examples: int = Field(100, ge=1, description="Training examples (the data's first rows).")
    learning_rate: float = Field(3e-3, gt=0, description="Learning rate of both refine runs.")
    data: str | None = Field(
        None,
        description="The refine's data file (any format paw trains on; read with data.prompt_template, "
        "train_on_prompt and max_length); unset: data.train_file, read as the trainings read it (columns, "
        "format too).",
    )
    labels: Literal["data", "source"] = Field(
        "data",
        description="data: train on the data's answers; source: on the source adapter's answers to its "
        "prompts (no labels needed; moves what the adapter does whatever the two models' shapes).",
    )
    temperature: float = Field(
        0.0,
        ge=0,
        description="labels source: 0 answers greedily; above 0 samples one answer per row at this temperature "
        "(for prompts with many right answers, where greedy teaches only the likeliest one).",
    )


# paw.transfer.methods' METHODS and CALIBRATED (the config layer sits below it; a test keeps them equal)
TransferMethod = Literal["auto", "direct", "project", "align", "align-act", "align-fit"]
CALIBRATED_METHODS = ("align-act", "align-fit")


class TransferConfig(Section):
    method: TransferMethod = Field(
        "auto",
        description="Transfer method (see paw transfer --help); auto picks direct or project per module.",
    )
    depth: Literal["name", "proportional", "cka"] = Field(
        "name", description="How source layers map to target layers."
    )
    k: float | None = Field(
        None,
        gt=0,
        description="Rank of the compared subspaces: an integer, or an energy fraction in (0, 1); "
        "unset: 4r capped at d/4.",
    )
    similarity_threshold: float = Field(
        0.2,
        ge=0,
        le=1,
        description="A module transfers only if its input and output subspace similarities both reach this "
        "and chance_multiple times chance (k/d, what unrelated bases give).",
    )
    chance_multiple: float = Field(
        3.0, ge=0, description="How far above chance (k/d) the subspace similarities must be."
    )
    calibration_data: str | None = Field(
        None,
        description="align-act, align-fit: a data file whose rows (the task's text) they are fitted on (align-act: "
        "before the corpus lines); unset: data.train_file (the corpus only when the data comes from the hub).",
    )
    refine: RefineConfig = Field(
        default_factory=RefineConfig, description="The refine stage after the transfer (off by default)."
    )

    @model_validator(mode="after")
    def _options_the_method_reads(self) -> TransferConfig:
        if self.calibration_data is not None and self.method not in CALIBRATED_METHODS:
            raise ValueError(
                f"transfer.calibration_data is read by methods {' and '.join(CALIBRATED_METHODS)} only (method: "
                f"{self.method})"
            )
        if self.k is not None and self.method == "align-fit":
            raise ValueError(
                "transfer.k sets the subspace rank of the weight-space methods; align-fit has none: drop it"
            )
        return self


class QuickTestConfig(Section):
    """What ``--quick-test`` shrinks every step to (a smoke run of a real config on one small GPU)."""

    max_steps: int = Field(20, ge=1, description="Training steps (a multi-stage schedule is scaled to fit).")
    train_samples: int = Field(200, ge=1, description="Training rows used (data.max_samples).")
    eval_limit: int = Field(50, ge=1, description="Examples per eval task.")
    batch_size: int = Field(2, ge=1, description="Training micro-batch and gradient accumulation 1.")


class PipelineSettings(Section):
    seeds: int = Field(
        1, ge=1, description="Train both LoRAs (and transfer) with this many seeds: training.seed, +1, ..."
    )
    bootstrap: int = Field(
        2000, ge=100, description="Paired bootstrap resamples over questions for CIs and significance."
    )
    confidence: float = Field(0.95, gt=0.5, lt=1, description="Confidence level of the reported intervals.")
    quick_test: QuickTestConfig = Field(
        default_factory=QuickTestConfig, description="Sizes used with --quick-test."
    )


class PipelineConfig(Section):
    """A whole pipeline: the YAML file after ``extends``, profile and overrides are applied."""

    source: ModelConfig = Field(description="The model the first LoRA is trained on.")
    target: ModelConfig = Field(description="The model the LoRA is transferred to.")
    peft: PeftField = Field(default_factory=default_section)
    data: DataConfig
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    eval: EvalConfig
    transfer: TransferConfig = Field(default_factory=TransferConfig)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    experiment: ExperimentConfig = Field(default_factory=ExperimentConfig)
    paths: PathsConfig = Field(default_factory=PathsConfig)

    @model_validator(mode="after")
    def _has_tasks(self) -> PipelineConfig:
        if not self.eval.tasks:
            raise ValueError("eval.tasks: a pipeline needs at least one task to measure (e.g. [arc_easy])")
        return self

    @model_validator(mode="after")
    def _trains_sft(self) -> PipelineConfig:
        if self.training.objective != "sft":
            raise ValueError(
                f"training.objective: the pipeline trains, transfers and compares SFT LoRAs; run "
                f"{self.training.objective} with paw train (peft.init_adapter continues a pipeline's adapter)"
            )
        return self

    def refine_data(self) -> tuple[str, dict[str, Any]]:
        """The refine stage's data file (``transfer.refine.data``, else ``data.train_file``) and the data settings
        it is read and tokenised with: the pipeline's text settings always, its ``columns``/``format`` when the file
        is ``data.train_file`` (they describe that file). With a refine stage one of the two files is set (checked
        below)."""
        refine, data = self.transfer.refine, self.data
        keys = REFINE_TEXT_SETTINGS if refine.data else REFINE_TEXT_SETTINGS + ("columns", "format")
        return refine.data or data.train_file or "", {key: getattr(data, key) for key in keys}

    @model_validator(mode="after")
    def _refine_has_data(self) -> PipelineConfig:
        refine = self.transfer.refine
        if refine.steps and refine.data is None and self.data.train_file is None:
            raise ValueError(
                "transfer.refine.data: the refine reads a local file; set it (data.train_file is unset: the "
                "training data comes from the hub)"
            )
        if refine.steps and self.peft.method != "lora":
            raise ValueError(
                f"transfer.refine: the refine stage trains LoRA adapters (peft.method is {self.peft.method})"
            )
        return self

    @model_validator(mode="after")
    def _method_fits_the_runs(self) -> PipelineConfig:
        for model in (self.source, self.target):
            self.peft.fits_run(self.training.max_steps, model.gradient_checkpointing)
        return self
