"""The parts of the recipe specific to sequence classification (``peft.task_type: SEQ_CLS``): batches padded per
batch, and the validation metrics — accuracy, and F1/precision/recall of the positive class (label 1) for two
labels, macro-averaged over labels otherwise."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

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
