"""The task registry: task name -> the module that defines it (imported only when the task is used)."""

from __future__ import annotations

import importlib

from paw.errors import PawError
from paw.eval.docs import Task
from paw.utils.suggest import did_you_mean

_MC = "paw.eval.tasks.multiple_choice"
_GEN = "paw.eval.tasks.generative"
REGISTRY: dict[str, str] = {
    **{
        name: _MC
        for name in (
            "arc_easy",
            "arc_challenge",
            "piqa",
            "hellaswag",
            "winogrande",
            "boolq",
            "openbookqa",
            "commonsense_qa",
            "glue_mrpc",
            "sst2",
            "paw_mc",
        )
    },
    **{
        name: _GEN
        for name in (
            "gsm8k",
            "cs_boolq",
            "cs_piqa",
            "cs_siqa",
            "cs_hellaswag",
            "cs_winogrande",
            "cs_arc_e",
            "cs_arc_c",
            "cs_obqa",
        )
    },
}


def get_task(name: str) -> Task:
    module = REGISTRY.get(name)
    if module is None:
        raise PawError(
            f"unknown task '{name}'{did_you_mean(name, REGISTRY)}; paw's tasks: {', '.join(REGISTRY)} "
            "(others run with --backend lm-eval)"
        )
    task = importlib.import_module(module).TASKS[name]
    assert task.name == name, f"registry entry {name} points at {task.name}"
    return task


def parse_tasks(spec: str | list[str]) -> list[Task]:
    names = spec.split(",") if isinstance(spec, str) else spec
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise PawError("--tasks: name at least one task, e.g. --tasks arc_easy,piqa")
    return [get_task(n) for n in dict.fromkeys(names)]
