"""Multiple-choice benchmarks in their native schemas, with lm-evaluation-harness's prompts (v0.4 task YAMLs),
so that paw's numbers are comparable with published lm-eval numbers.

Each builder returns a :class:`ChoiceDoc`; choices are scored as ``" " + choice`` after the context.
"""

from __future__ import annotations

import re
from typing import Any

from paw.errors import PawError
from paw.eval.docs import ChoiceDoc, HubSource, Task, int_label, label_index

MC = ("acc", "acc_norm")


def _arc(row: dict[str, Any], where: str) -> ChoiceDoc:
    # HF schema: question, choices{text,label}, answerKey; AI2 release: question{stem, choices[{text,label}]}.
    question = row["question"]
    if isinstance(question, dict):
        texts = [c["text"] for c in question["choices"]]
        labels = [c["label"] for c in question["choices"]]
        question = question["stem"]
    else:
        texts, labels = list(row["choices"]["text"]), list(row["choices"]["label"])
    return ChoiceDoc(
        where, f"Question: {question}\nAnswer:", texts, label_index(labels, row["answerKey"], where, texts)
    )


def _piqa(row: dict[str, Any], where: str) -> ChoiceDoc:
    # HF rows carry `label`; the original PAW project's copies call it `answer`.
    value = row["label"] if "label" in row else row.get("answer")
    if value is None:
        raise PawError(f"{where}: missing field 'label' (or 'answer')")
    return ChoiceDoc(
        where, f"Question: {row['goal']}\nAnswer:", [row["sol1"], row["sol2"]], int_label(value, where)
    )


def hellaswag_preprocess(text: str) -> str:
    """lm-eval's HellaSwag cleaning: WikiHow '[title]' markers become '. ', other bracketed artifacts go."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def _hellaswag(row: dict[str, Any], where: str) -> ChoiceDoc:
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    query = hellaswag_preprocess(row["activity_label"] + ": " + ctx)
    return ChoiceDoc(
        where, query, [hellaswag_preprocess(e) for e in row["endings"]], int_label(row["label"], where)
    )


def _winogrande(row: dict[str, Any], where: str) -> ChoiceDoc:
    """Partial scoring: each option fills the blank in the prefix; the shared suffix is what gets scored."""
    sentence = row["sentence"]
    if "_" not in sentence:
        raise PawError(f"{where}: WinoGrande sentence has no '_' blank")
    idx = sentence.index("_")
    contexts = [sentence[:idx] + option for option in (row["option1"], row["option2"])]
    answer = {"1": 0, "2": 1}.get(str(row["answer"]).strip())
    if answer is None:
        raise PawError(f"{where}: WinoGrande answer must be '1' or '2', got {row['answer']!r}")
    return ChoiceDoc(where, contexts, contexts, answer, continuation=sentence[idx + 1 :].strip())


def _boolq(row: dict[str, Any], where: str) -> ChoiceDoc:
    value = row["label"] if "label" in row else row.get("answer")
    if value is None:
        raise PawError(f"{where}: missing field 'label' (or 'answer')")
    gold = int_label(value, where, {"true": 1, "false": 0, "yes": 1, "no": 0})
    return ChoiceDoc(where, f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:", ["no", "yes"], gold)


def _openbookqa(row: dict[str, Any], where: str) -> ChoiceDoc:
    labels, texts = list(row["choices"]["label"]), list(row["choices"]["text"])
    gold = label_index(labels, str(row["answerKey"]).lstrip(), where, texts)
    return ChoiceDoc(where, row["question_stem"], texts, gold)


def _commonsense_qa(row: dict[str, Any], where: str) -> ChoiceDoc:
    question = row["question"]
    if isinstance(question, dict):  # original release: question{stem, choices[{label,text}]}
        texts = [c["text"] for c in question["choices"]]
        question = question["stem"]
    else:
        texts = list(row["choices"]["text"])
    if len(texts) != 5:
        raise PawError(f"{where}: CommonsenseQA needs 5 choices, got {len(texts)}")
    letters = ["A", "B", "C", "D", "E"]
    lines = "\n".join(f"{letter}. {text}" for letter, text in zip(letters, texts, strict=True))
    return ChoiceDoc(
        where,
        f"Question: {question.strip()}\n{lines}\nAnswer:",
        letters,
        label_index(letters, row["answerKey"], where),
    )


def _mrpc(row: dict[str, Any], where: str) -> ChoiceDoc:
    context = (
        f"Sentence 1: {row['sentence1']}\nSentence 2: {row['sentence2']}\n"
        "Question: Do both sentences mean the same thing?\nAnswer:"
    )
    return ChoiceDoc(where, context, ["no", "yes"], int_label(row["label"], where))


def _sst2(row: dict[str, Any], where: str) -> ChoiceDoc:
    context = f"{row['sentence']}\nQuestion: Is this sentence positive or negative?\nAnswer:"
    return ChoiceDoc(where, context, ["negative", "positive"], int_label(row["label"], where))


def _paw_mc(row: dict[str, Any], where: str) -> ChoiceDoc:
    """The original PAW project's unified format: input, options ["A: text", ...], target_idx."""
    options = row["options"]
    if not isinstance(options, list) or not options:
        raise PawError(f'{where}: \'options\' must be a non-empty list like ["A: ...", "B: ..."]')
    texts = [re.sub(r"^\s*[A-Za-z0-9]+\s*[:.)]\s*", "", str(o), count=1) for o in options]
    return ChoiceDoc(where, f"Question: {row['input']}\nAnswer:", texts, int_label(row["target_idx"], where))


ARC_FIELDS = ("question", "answerKey")
TASKS = {
    "arc_easy": Task(
        "arc_easy", "multiple_choice", _arc, ARC_FIELDS, MC, HubSource("allenai/ai2_arc", "ARC-Easy", "test")
    ),
    "arc_challenge": Task(
        "arc_challenge",
        "multiple_choice",
        _arc,
        ARC_FIELDS,
        MC,
        HubSource("allenai/ai2_arc", "ARC-Challenge", "test"),
    ),
    "piqa": Task(
        "piqa",
        "multiple_choice",
        _piqa,
        ("goal", "sol1", "sol2"),
        MC,
        HubSource("baber/piqa", None, "validation"),
    ),
    "hellaswag": Task(
        "hellaswag",
        "multiple_choice",
        _hellaswag,
        ("activity_label", "ctx_a", "ctx_b", "endings", "label"),
        MC,
        HubSource("Rowan/hellaswag", None, "validation"),
    ),
    "winogrande": Task(
        "winogrande",
        "multiple_choice",
        _winogrande,
        ("sentence", "option1", "option2", "answer"),
        ("acc",),
        HubSource("allenai/winogrande", "winogrande_xl", "validation"),
    ),
    "boolq": Task(
        "boolq",
        "multiple_choice",
        _boolq,
        ("passage", "question"),
        ("acc",),
        HubSource("aps/super_glue", "boolq", "validation"),
    ),
    "openbookqa": Task(
        "openbookqa",
        "multiple_choice",
        _openbookqa,
        ("question_stem", "choices", "answerKey"),
        MC,
        HubSource("allenai/openbookqa", "main", "test"),
    ),
    "commonsense_qa": Task(
        "commonsense_qa",
        "multiple_choice",
        _commonsense_qa,
        ("question", "answerKey"),
        ("acc",),
        HubSource("tau/commonsense_qa", None, "validation"),
    ),
    "glue_mrpc": Task(
        "glue_mrpc",
        "multiple_choice",
        _mrpc,
        ("sentence1", "sentence2", "label"),
        ("acc", "f1"),
        HubSource("nyu-mll/glue", "mrpc", "validation"),
    ),
    "sst2": Task(
        "sst2",
        "multiple_choice",
        _sst2,
        ("sentence", "label"),
        ("acc",),
        HubSource("nyu-mll/glue", "sst2", "validation"),
    ),
    "paw_mc": Task(
        "paw_mc",
        "multiple_choice",
        _paw_mc,
        ("input", "options", "target_idx"),
        MC,
        description="the original PAW project's unified multiple-choice format (needs --data-file)",
    ),
}
