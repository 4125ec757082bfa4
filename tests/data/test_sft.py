import json
import logging

import pytest

from paw.data.formats import alpaca_prompt
from paw.data.readers import read_rows
from paw.data.sft import IGNORE_INDEX, SftDataOptions, build_sft_data
from paw.errors import PawError


@pytest.fixture(scope="module")
def tokenizer(tiny_qwen2):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_qwen2)


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


ROW = {"instruction": "Name the category of the word.", "input": "apple", "output": "fruit"}


def test_prompt_is_masked_and_answer_ends_with_eos(tmp_path, tokenizer):
    data = build_sft_data(SftDataOptions(str(_jsonl(tmp_path / "d.jsonl", [ROW]))), tokenizer)
    example = data.train.examples[0]
    prompt_ids = tokenizer(alpaca_prompt(ROW["instruction"], ROW["input"]), add_special_tokens=False)[
        "input_ids"
    ]
    n = len(prompt_ids)
    assert example["input_ids"][:n] == prompt_ids
    assert example["labels"][:n] == [IGNORE_INDEX] * n
    target = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert tokenizer.decode(target) == "fruit" + tokenizer.eos_token
    assert data.format == "alpaca" and data.report["train"]["examples"] == 1


@pytest.mark.parametrize("name", ["phi3", "llama-spm", "qwen2"])
def test_answers_are_the_tokens_evaluation_scores(tmp_path, real_tokenizers, name):
    """The row's text is tokenised once, as evaluation and generation tokenise it: with a dummy-prefix SentencePiece
    tokenizer (Phi-3, Llama-2) the answer after the prompt's newline is `f ruit`, never the `▁fruit` it gets alone
    (trained on that, the zoo's Phi-3 LoRA did not learn the category task as scored)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(real_tokenizers[name])
    data = build_sft_data(SftDataOptions(str(_jsonl(tmp_path / "d.jsonl", [ROW]))), tokenizer)
    example = data.train.examples[0]
    prompt = alpaca_prompt(ROW["instruction"], ROW["input"])
    whole = tokenizer(prompt + "fruit" + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    bos = [tokenizer.bos_token_id] if tokenizer("a")["input_ids"][0] == tokenizer.bos_token_id else []
    assert example["input_ids"] == bos + whole
    answer = [t for t in example["labels"] if t != IGNORE_INDEX]
    assert answer == whole[-len(answer) :] and tokenizer.decode(answer) == "fruit" + tokenizer.eos_token
    alone = tokenizer("fruit", add_special_tokens=False)["input_ids"]
    if name != "qwen2":  # the dummy prefix: the word alone is another token sequence than after the prompt
        assert answer[: len(alone)] != alone


def test_chat_messages_mask_everything_but_assistant_turns(tmp_path, tokenizer):
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
    data = build_sft_data(SftDataOptions(str(_jsonl(tmp_path / "c.jsonl", [row]))), tokenizer)
    ex = data.train.examples[0]
    target = tokenizer.decode([t for t in ex["labels"] if t != IGNORE_INDEX])
    assert target == "hello<|im_end|>\n"
    assert tokenizer.decode(ex["input_ids"]).startswith("<|im_start|>user\nhi<|im_end|>")


def test_malformed_jsonl_line_names_file_and_line(tmp_path, tokenizer):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + '{"instruction": "x", "output": }\n')
    with pytest.raises(PawError, match=rf"{path}:2: malformed JSON line"):
        build_sft_data(SftDataOptions(str(path)), tokenizer)


def test_missing_field_names_file_and_line(tmp_path, tokenizer):
    path = _jsonl(tmp_path / "m.jsonl", [ROW, {"instruction": "x", "input": "y", "answer": "z"}])
    with pytest.raises(PawError, match=rf"{path}:2: missing field 'output'"):
        build_sft_data(SftDataOptions(str(path), format="alpaca"), tokenizer)


def test_empty_dataset(tmp_path, tokenizer):
    (tmp_path / "e.jsonl").write_text("\n")
    with pytest.raises(PawError, match="the dataset is empty"):
        build_sft_data(SftDataOptions(str(tmp_path / "e.jsonl")), tokenizer)


def test_truncation_is_counted_and_fully_truncated_rows_dropped(tmp_path, tokenizer):
    long_input = " ".join(["apple banana"] * 40)
    rows = [ROW, {**ROW, "input": long_input}]
    prompt = len(
        tokenizer(alpaca_prompt(ROW["instruction"], ROW["input"]), add_special_tokens=False)["input_ids"]
    )
    limit = prompt + 4
    data = build_sft_data(
        SftDataOptions(str(_jsonl(tmp_path / "t.jsonl", rows)), max_length=limit), tokenizer
    )
    assert data.report["train"]["examples"] == 1
    assert data.report["train"]["dropped_by_reason"] == {"completion truncated away": 1}
    assert data.report["train"]["dropped_rows"][0]["where"].endswith("t.jsonl:2")
    short = build_sft_data(
        SftDataOptions(str(_jsonl(tmp_path / "s.jsonl", [{**ROW, "output": "x " * 60}])), max_length=limit),
        tokenizer,
    )
    assert short.report["train"]["truncated"] == 1


def test_all_rows_truncated_away_is_an_error(tmp_path, tokenizer):
    with pytest.raises(PawError, match=r"no usable training examples.*raise data\.max_length"):
        build_sft_data(SftDataOptions(str(_jsonl(tmp_path / "a.jsonl", [ROW] * 3)), max_length=8), tokenizer)


def test_val_ratio_split_is_seeded(tmp_path, tokenizer):
    from paw.data.synthetic import generate_alpaca

    path = _jsonl(tmp_path / "v.jsonl", generate_alpaca(50))
    a = build_sft_data(SftDataOptions(str(path), val_ratio=0.2, seed=3), tokenizer)
    b = build_sft_data(SftDataOptions(str(path), val_ratio=0.2, seed=3), tokenizer)
    assert len(a.val.examples) == 10 and len(a.train.examples) == 40
    assert a.val.examples == b.val.examples


def test_python_literal_lines_are_read_safely_with_a_warning(tmp_path, caplog):
    path = tmp_path / "arc.jsonl"
    path.write_text("{'question': 'Q?', 'answerKey': 'A'}\n")
    with caplog.at_level(logging.WARNING, logger="paw.data"):
        records = read_rows(path)
    assert records[0].row == {"question": "Q?", "answerKey": "A"}
    assert "Python dict literals" in caplog.text
    path.write_text("{'q': __import__('os').system('echo pwned')}\n")
    with pytest.raises(PawError, match=":1: malformed JSON line"):
        read_rows(path)


def test_csv_json_and_unknown_suffix(tmp_path):
    (tmp_path / "d.csv").write_text("instruction,input,output\nsay,hi,hello\n")
    assert read_rows(tmp_path / "d.csv")[0].row["output"] == "hello"
    assert read_rows(tmp_path / "d.csv")[0].where.endswith("d.csv:2")
    (tmp_path / "d.json").write_text(json.dumps([ROW, ROW]))
    assert len(read_rows(tmp_path / "d.json")) == 2
    (tmp_path / "d.txt").write_text("x")
    with pytest.raises(PawError, match="unsupported data file type '.txt'"):
        read_rows(tmp_path / "d.txt")
    with pytest.raises(PawError, match="data file not found"):
        read_rows(tmp_path / "none.jsonl")


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("dup.jsonl", '{"instruction": "a", "output": "b"}\n{"output": "x", "output": "y"}\n', r"dup\.jsonl:2: the key 'output' appears twice"),
        ("dup.json", '[{"instruction": "a", "instruction": "b"}]', r"dup\.json: an object names the key 'instruction' twice"),
        ("short.csv", "instruction,input,output\nsay,hi,hello\nsay,hi\n", r"short\.csv:3: 2 fields, the header has 3"),
        ("long.csv", "instruction,input,output\nsay,hi,hello,extra\n", r"long\.csv:2: more fields than the header has"),
        ("header.csv", "instruction,output,output\nsay,a,b\n", r"header\.csv:1: the header names column\(s\) \['output'\] more than once"),
    ],
)  # fmt: skip
def test_malformed_rows_are_refused_never_merged_or_padded(tmp_path, name, text, message):
    """Each format paw reads: a repeated key, a short or long CSV row, a repeated CSV column — each would drop or
    merge a value silently; each is refused with file:line."""
    (tmp_path / name).write_text(text)
    with pytest.raises(PawError, match=message):
        read_rows(tmp_path / name)


def test_infer_inputs_refuse_ambiguous_or_repeated_keys(tmp_path):
    from paw.infer.inputs import read_inputs

    both = tmp_path / "both.jsonl"
    both.write_text('{"prompt": "hi"}\n{"prompt": "a", "messages": [{"role": "user", "content": "b"}]}\n')
    with pytest.raises(PawError, match=r"both\.jsonl:2: give one input per line, not prompt and messages"):
        read_inputs(both)
    twice = tmp_path / "twice.jsonl"
    twice.write_text('{"prompt": "a", "prompt": "b"}\n')
    with pytest.raises(PawError, match=r"twice\.jsonl:1: the key 'prompt' appears twice"):
        read_inputs(twice)
