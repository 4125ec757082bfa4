"""Preference pairs, KTO rows and GRPO prompts: every row form, the SFT tokenisation, file:line errors; and the
verifiable rewards."""

import json

import pytest

from paw.data.preference import PAIRED, UNPAIRED, build_preference_data
from paw.data.prompts import build_prompt_data
from paw.data.sft import SftDataOptions, build_sft_data
from paw.errors import PawError


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen2)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _pairs(tmp_path, rows, tokenizer, **options):
    return build_preference_data(
        SftDataOptions(_jsonl(tmp_path / "p.jsonl", rows), **options), tokenizer, PAIRED
    )


ALPACA = {"instruction": "Name the category of the word.", "input": "apple"}


def test_a_pair_is_tokenised_as_sft_tokenises_its_prompt_and_answer(tmp_path, tokenizer):
    data = _pairs(tmp_path, [{**ALPACA, "chosen": "fruit", "rejected": "tool"}], tokenizer)
    sft = build_sft_data(
        SftDataOptions(_jsonl(tmp_path / "s.jsonl", [{**ALPACA, "output": "fruit"}])), tokenizer
    )
    pair, example = data.train.examples[0], sft.train.examples[0]
    prompt_len = len(pair["prompt_ids"])
    assert pair["prompt_ids"] + pair["chosen_ids"] == example["input_ids"]
    assert all(label == -100 for label in example["labels"][:prompt_len])
    assert pair["chosen_ids"][-1] == pair["rejected_ids"][-1] == tokenizer.eos_token_id
    assert data.report["train"]["prompt_forms"] == {"alpaca": 1}


def test_chat_pairs_and_ultrafeedback_conversations_give_the_same_example(tmp_path, tokenizer):
    user = [{"role": "user", "content": "Which group is apple in?"}]
    rows = [
        {"prompt": user, "chosen": [{"role": "assistant", "content": "fruit"}], "rejected": "tool"},
        {
            "chosen": [*user, {"role": "assistant", "content": "fruit"}],
            "rejected": [*user, {"role": "assistant", "content": "tool"}],
        },
        {
            "prompt": "Which group is apple in?",
            "chosen": [{"role": "assistant", "content": "fruit"}],
            "rejected": [{"role": "assistant", "content": "tool"}],
        },
    ]
    data = _pairs(tmp_path, rows, tokenizer)
    first, *others = data.train.examples
    assert all(other == first for other in others)
    rendered = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(first["prompt_ids"]) == rendered


def test_equal_completions_and_oversized_prompts_are_dropped_and_listed(tmp_path, tokenizer):
    rows = [
        {"prompt": "p", "chosen": "same", "rejected": "same "},
        {"prompt": "a long prompt " * 40, "chosen": "x", "rejected": "y"},
        {"prompt": "q", "chosen": "right " * 40, "rejected": "wrong"},
    ]
    data = _pairs(tmp_path, rows, tokenizer, max_length=32)
    summary = data.report["train"]
    assert summary["examples"] == 1 and summary["truncated"] == 1
    assert summary["dropped_by_reason"] == {"chosen equals rejected": 1, "prompt fills max_length": 1}
    assert summary["dropped_rows"][0]["where"].endswith("p.jsonl:1")
    kept = data.train.examples[0]
    assert len(kept["prompt_ids"]) + len(kept["chosen_ids"]) == 32


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "p", "chosen": "a"}, "p.jsonl:2: missing field 'rejected'"),
        ({"chosen": "a", "rejected": "b"}, "p.jsonl:2: no prompt"),
        ({"prompt": "p", "chosen": 3, "rejected": "b"}, "p.jsonl:2: field 'chosen' must be a string"),
        (
            {"prompt": "p", "chosen": [{"role": "assistant", "content": "a"}] * 2, "rejected": "b"},
            "p.jsonl:2: 'chosen' is a conversation but 'rejected' is not",
        ),
        (
            {
                "chosen": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "a"}],
                "rejected": [{"role": "user", "content": "y"}, {"role": "assistant", "content": "b"}],
            },
            "p.jsonl:2: 'chosen' and 'rejected' differ before their last message",
        ),
        (
            {"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"},
            "p.jsonl:2: messages[0]",
        ),
    ],
)
def test_a_bad_pair_names_its_file_and_line(tmp_path, tokenizer, row, message):
    good = {"prompt": "p", "chosen": "a", "rejected": "b"}
    with pytest.raises(PawError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _pairs(tmp_path, [good, row], tokenizer)


def test_kto_rows_need_a_boolean_label_and_both_labels(tmp_path, tokenizer):
    path = tmp_path / "k.jsonl"
    bad = [
        {"prompt": "p", "completion": "a", "label": True},
        {"prompt": "p", "completion": "b", "label": "yes"},
    ]
    with pytest.raises(PawError, match=r"k.jsonl:2: field 'label' must be true"):
        build_preference_data(SftDataOptions(_jsonl(path, bad)), tokenizer, UNPAIRED)
    one_sided = [
        {"prompt": "p", "completion": "a", "label": 1},
        {"prompt": "q", "completion": "b", "label": 1},
    ]
    with pytest.raises(PawError, match="every KTO row is desirable"):
        build_preference_data(SftDataOptions(_jsonl(path, one_sided)), tokenizer, UNPAIRED)
    rows = [
        {**ALPACA, "completion": "fruit", "label": True},
        {**ALPACA, "completion": "tool", "label": False},
    ]
    data = build_preference_data(SftDataOptions(_jsonl(path, rows)), tokenizer, UNPAIRED, text_rows=True)
    assert data.report["train"]["desirable"] == 1
    assert data.train.examples[0]["prompt"].startswith("Below is an instruction")  # the SFT prompt, for TRL


def test_grpo_prompts_carry_the_fields_rewards_read(tmp_path, tokenizer):
    rows = [{**ALPACA, "answer": "fruit", "note": 1}, {"prompt": "2+2=", "answer": "4"}]
    data = build_prompt_data(SftDataOptions(_jsonl(tmp_path / "g.jsonl", rows)), tokenizer, ["answer"])
    assert [sorted(e) for e in data.train.examples] == [
        ["answer", "prompt"]
    ] * 2  # 'note' is not in every row
    assert data.train.examples[1]["prompt"] == "2+2="
    with pytest.raises(PawError, match=r"g.jsonl:2: missing field 'answer', which a reward reads"):
        build_prompt_data(
            SftDataOptions(_jsonl(tmp_path / "g.jsonl", [rows[0], {"prompt": "x"}])), tokenizer, ["answer"]
        )
