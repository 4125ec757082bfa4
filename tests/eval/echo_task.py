"""A task that exists only for the tests (registered by the test with one line): generate after a prompt, score
whether the output contains the row's word. It shows a task owns its rows, prompt and scoring."""

from typing import Any

from paw.eval.docs import GenDoc, Task


def _doc(row: dict[str, Any], where: str) -> GenDoc:
    return GenDoc(where, f"Say {row['word']}:", row["word"])


def _score(doc: GenDoc, output: str) -> dict[str, Any]:
    return {"said": float(doc.gold in output), "length": float(len(output))}


TASKS = {
    "echo_word": Task(
        "echo_word", "generation", _doc, ("word",), ("said",), generation={"max_new_tokens": 4}, score=_score
    )
}
