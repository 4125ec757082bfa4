"""Packing: every example once, rows within max_length, no attention or loss across example boundaries."""

import pytest
import torch

from paw.config.loader import validate_dict
from paw.data.packing import PackedCollator, pack_examples, real_tokens
from paw.errors import PawError
from tests.conftest import small_config


def _examples(lengths):
    out, start = [], 10
    for n in lengths:
        ids = list(range(start, start + n))
        out.append({"input_ids": ids, "labels": [-100] * (n // 2) + ids[n // 2 :]})
        start += n
    return out


def test_rows_hold_every_example_once_within_max_length():
    examples = _examples([7, 3, 9, 2, 5, 5, 1, 8])
    rows = pack_examples(examples, 10)
    assert all(len(r["input_ids"]) <= 10 for r in rows)
    flat = sorted(t for r in rows for t in r["input_ids"])
    assert flat == sorted(t for e in examples for t in e["input_ids"])
    assert len(rows) == 4  # 40 tokens in rows of 10: best-fit decreasing fills every row (9+1, 8+2, 7+3, 5+5)
    for row in rows:
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        assert all(row["labels"][i] == -100 for i in starts)  # nothing learns to predict across a boundary


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_packed_rows_compute_what_separate_examples_compute(tiny_qwen2, attention):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2, attn_implementation=attention).eval()
    examples = _examples([5, 3, 6])
    rows = pack_examples(examples, 9)
    batch = PackedCollator(pad_token_id=0, attention=attention)(rows)
    assert real_tokens(batch) == 14
    with torch.no_grad():
        packed = model(**{k: batch[k] for k in ("input_ids", "position_ids", "attention_mask")}).logits
        for example in examples:
            alone = model(input_ids=torch.tensor([example["input_ids"]])).logits[0]
            b, start = next(
                (b, r["input_ids"].index(example["input_ids"][0]))
                for b, r in enumerate(rows)
                if example["input_ids"][0] in r["input_ids"]
            )
            torch.testing.assert_close(
                packed[b, start : start + len(example["input_ids"])], alone, atol=1e-5, rtol=1e-4
            )


@pytest.mark.slow
def test_packed_training_gets_the_example_boundaries(tmp_path, alpaca_file, monkeypatch):
    from paw.train.recipe import run_training

    seen = []
    original = PackedCollator.__call__
    monkeypatch.setattr(
        PackedCollator,
        "__call__",
        lambda self, rows: seen.append(all("position_ids" in r for r in rows)) or original(self, rows),
    )
    cfg = small_config(alpaca_file, tmp_path, max_steps=4)
    cfg["data"].update(packing=True, max_length=256)
    result = run_training(validate_dict(cfg, "t.yaml"), name="packed")
    assert seen and all(seen)  # the Trainer must not drop position_ids on the way
    assert result.report["steps"][-1]["step"] == 4 and result.report["tokens_seen"] > 4 * 4 * 60


@pytest.mark.parametrize(
    ("peft", "message"),
    [({"task_type": "SEQ_CLS"}, "sequence classification"), ({"method": "prompt"}, "prompt tuning")],
)
def test_packing_refuses_one_example_per_row_setups(tmp_path, peft, message):
    cfg = small_config(tmp_path / "t.jsonl", tmp_path)
    cfg["data"]["packing"] = True
    cfg["peft"] = peft
    with pytest.raises(PawError, match=f"data.packing: not available with {message}"):
        validate_dict(cfg, "t.yaml")
