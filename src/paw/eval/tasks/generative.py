"""Generation tasks: GSM8K (lm-eval's prompt, stop sequences and answer filters) and the instruction-format
commonsense tasks of the LLM-Adapters / DoRA papers (Alpaca prompt, answer word extracted from the output).
"""

from __future__ import annotations

import re
from typing import Any

from paw.data.formats import alpaca_prompt
from paw.eval.docs import GenDoc, HubSource, Task

# lm-eval gsm8k.yaml: strict-match takes "#### n", flexible-extract the last number-like string.
GSM8K_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
GSM8K_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
GSM8K_IGNORE = (",", "\\$", "(?s).*#### ", "\\.$")


def gsm8k_normalize(text: str) -> str:
    """lm-eval's exact_match preprocessing for gsm8k: drop commas, '$', everything up to '#### ', a final '.'."""
    for pattern in GSM8K_IGNORE:
        text = re.sub(pattern, "", text)
    return text.strip().lower()


def gsm8k_extract(output: str, mode: str) -> str:
    if mode == "strict-match":
        match = GSM8K_STRICT.search(output)
        return match.group(1) if match else "[invalid]"
    matches = GSM8K_FLEXIBLE.findall(output)
    if not matches:
        return "[invalid]"
    last = matches[-1]
    return next(group for group in last if group)


def _gsm8k(row: dict[str, Any], where: str) -> GenDoc:
    return GenDoc(
        where, f"Question: {row['question']}\nAnswer:", row["answer"], fewshot_target=" " + row["answer"]
    )


# LLM-Adapters commonsense_evaluate.py: the first answer word of the expected kind in the output.
CS_PATTERNS = {
    "cs_boolq": r"true|false",
    "cs_piqa": r"solution1|solution2",
    "cs_siqa": r"answer1|answer2|answer3|answer4|answer5",
    "cs_arc_c": r"answer1|answer2|answer3|answer4|answer5",
    "cs_arc_e": r"answer1|answer2|answer3|answer4|answer5",
    "cs_obqa": r"answer1|answer2|answer3|answer4|answer5",
    "cs_hellaswag": r"ending1|ending2|ending3|ending4",
    "cs_winogrande": r"option1|option2",
}


def cs_extract(task: str, output: str) -> str:
    found = re.findall(CS_PATTERNS[task], output.strip().lower())
    return found[0] if found else ""


def _instruction(row: dict[str, Any], where: str) -> GenDoc:
    instruction, input_text = row["instruction"], row.get("input") or ""
    user = f"{instruction}\n\n{input_text}" if input_text.strip() else instruction
    gold = str(row["answer"]).strip().lower()
    return GenDoc(where, alpaca_prompt(instruction, input_text), gold, user=user)


def _score_gsm8k(doc: GenDoc, output: str) -> dict[str, Any]:
    """lm-eval's two gsm8k filters: the '#### N' answer (strict) and the last number (flexible)."""
    gold, sample = gsm8k_normalize(doc.gold), {}
    for mode in ("strict-match", "flexible-extract"):
        pred = gsm8k_extract(output, mode)
        sample[f"pred,{mode}"] = pred
        sample[f"exact_match,{mode}"] = float(gsm8k_normalize(pred) == gold)
    return sample


def _score_choice_word(task: str):
    """The instruction-format commonsense tasks: the first answer word of the task's pattern, exact match."""

    def score(doc: GenDoc, output: str) -> dict[str, Any]:
        pred = cs_extract(task, output)
        return {"pred": pred, "acc": float(pred == doc.gold)}

    return score


TASKS = {
    "gsm8k": Task(
        "gsm8k",
        "generation",
        _gsm8k,
        ("question", "answer"),
        ("exact_match,strict-match", "exact_match,flexible-extract"),
        HubSource("openai/gsm8k", "main", "test"),
        generation={"until": ["Question:", "</s>", "<|im_end|>"], "max_new_tokens": 256},
        score=_score_gsm8k,
    ),
}
for _name in CS_PATTERNS:
    TASKS[_name] = Task(
        _name,
        "generation",
        _instruction,
        ("instruction", "answer"),
        ("acc",),
        description="instruction-format commonsense (LLM-Adapters); needs --data-file",
        generation={"until": [], "max_new_tokens": 32},
        score=_score_choice_word(_name),
    )
