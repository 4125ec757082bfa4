"""Sequence classification (``peft.task_type: SEQ_CLS``): text or sentence pairs with a label, a fresh
classification head trained with the adapter, batches padded per batch, and the validation metrics — accuracy,
and F1/precision/recall of the positive class (label 1) for two labels, macro-averaged over labels otherwise."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from paw.data.classification import ClassificationData, build_classification_data, to_classification_dataset
from paw.train.objectives import data_options
from paw.utils.io import atomic_write_json

if TYPE_CHECKING:
    from paw.config.schema import RunConfig
    from paw.models.load import LoadOptions
    from paw.models.resolve import ResolvedModel
    from paw.utils.hf_types import Model, Tokenizer

LABELS_FILE = "paw_labels.json"  # next to the adapter: label names and text fields, for whoever loads it


def precision_recall_f1(golds: list[int], preds: list[int], labels: list[int]) -> tuple[float, float, float]:
    """Macro-averaged over ``labels`` (a single label: that class's own figures)."""
    ps, rs, fs = [], [], []
    for label in labels:
        tp = sum(g == label and p == label for g, p in zip(golds, preds, strict=True))
        fp = sum(g != label and p == label for g, p in zip(golds, preds, strict=True))
        fn = sum(g == label and p != label for g, p in zip(golds, preds, strict=True))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        ps.append(precision)
        rs.append(recall)
        fs.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
    n = len(labels)
    return sum(ps) / n, sum(rs) / n, sum(fs) / n


def compute_metrics(num_labels: int):
    def metrics(prediction: Any) -> dict[str, float]:
        logits, golds = prediction.predictions, prediction.label_ids
        if isinstance(logits, tuple):
            logits = logits[0]
        preds = logits.argmax(-1).tolist()
        golds = golds.tolist()
        scope = [1] if num_labels == 2 else list(range(num_labels))
        precision, recall, f1 = precision_recall_f1(golds, preds, scope)
        accuracy = sum(g == p for g, p in zip(golds, preds, strict=True)) / max(1, len(golds))
        return {"accuracy": accuracy, "f1": f1, "precision": precision, "recall": recall}

    return metrics


def collator(tokenizer: Tokenizer):
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def build_data(config: RunConfig, tokenizer: Tokenizer) -> tuple[ClassificationData, list[str]]:
    data = build_classification_data(
        data_options(config), tokenizer, config.data.text_fields, config.data.label_field
    )
    return data, []


def load_base(resolved: ResolvedModel, options: LoadOptions, data: ClassificationData) -> Model:
    from paw.models.load import load_sequence_classifier

    return load_sequence_classifier(resolved, options, data.labels)


def auto_class() -> type:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification


def arguments(kwargs: dict[str, Any], config: RunConfig) -> Any:
    from transformers import TrainingArguments

    return TrainingArguments(**kwargs)


def trainer(
    config: RunConfig, model: Model, tokenizer: Tokenizer, data: ClassificationData, common: dict[str, Any]
):
    from paw.train.trainer import PawClassificationTrainer

    return PawClassificationTrainer(
        train_dataset=to_classification_dataset(data.train),
        eval_dataset=to_classification_dataset(data.val) if data.val else None,
        data_collator=collator(tokenizer),
        compute_metrics=compute_metrics(len(data.labels)),
        **common,
    )


def save_files(directory: Path, tokenizer: Tokenizer, data: ClassificationData, config: RunConfig) -> None:
    """The label names (in head order) and the text fields, for whoever loads the classifier."""
    atomic_write_json(directory / LABELS_FILE, {"labels": data.labels, "text_fields": list(data.text_fields)})


REPORTED: tuple[str, ...] = ()


def reported(config: RunConfig) -> tuple[str, ...]:
    """The trainer's per-step metrics kept in training_report.json."""
    return REPORTED
