"""``--backend lm-eval``: run lm-evaluation-harness through its Python API with paw's model resolution, and write
paw's result files. Optional extra (``pip install paw[lm-eval]``), imported only here.

Any lm-eval task name or task YAML works. paw registry tasks with a ``--data-file`` run lm-eval's own task
definition on the local file (a generated YAML that ``include``s lm-eval's and swaps the dataset for ``json``),
which is also how paw's native scores are checked against lm-eval's.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import yaml

from paw.errors import PawError

# paw task -> lm-eval task YAML (relative to lm_eval/tasks) and the lm-eval task name.
LM_EVAL_TASKS = {
    "arc_easy": ("arc/arc_easy.yaml", "arc_easy"),
    "arc_challenge": ("arc/arc_challenge.yaml", "arc_challenge"),
    "piqa": ("piqa/piqa.yaml", "piqa"),
    "hellaswag": ("hellaswag/hellaswag.yaml", "hellaswag"),
    "winogrande": ("winogrande/default.yaml", "winogrande"),
    "boolq": ("super_glue/boolq/default.yaml", "boolq"),
    "openbookqa": ("openbookqa/openbookqa.yaml", "openbookqa"),
    "commonsense_qa": ("commonsense_qa/default.yaml", "commonsense_qa"),
    "glue_mrpc": ("glue/mrpc/default.yaml", "mrpc"),
    "sst2": ("glue/sst2/default.yaml", "sst2"),
    "gsm8k": ("gsm8k/gsm8k.yaml", "gsm8k"),
}


def _lm_eval():
    try:
        import lm_eval
    except ImportError:
        raise PawError("--backend lm-eval needs lm-evaluation-harness: pip install 'paw[lm-eval]'") from None
    return lm_eval


def local_task_yaml(
    paw_task: str, data_file: str | Path, directory: Path, fewshot_file: str | Path | None = None
) -> str:
    """Write a task YAML that runs lm-eval's definition of ``paw_task`` on a local JSON/JSONL file, its few-shot
    examples drawn from ``fewshot_file`` (the training split) when given, else from the scored file itself."""
    lm_eval = _lm_eval()
    if paw_task not in LM_EVAL_TASKS:
        raise PawError(f"task {paw_task} has no lm-eval counterpart to run on a local file")
    relative, _ = LM_EVAL_TASKS[paw_task]
    name = f"paw_local_{paw_task}"
    spec = {
        "include": str(Path(lm_eval.__file__).parent / "tasks" / relative),
        "task": name,
        "tag": [],
        "dataset_path": "json",
        "dataset_name": None,
        "dataset_kwargs": {"data_files": {"test": str(Path(data_file).resolve())}},
        "training_split": None,
        "validation_split": None,
        "fewshot_split": "test",
        "test_split": "test",
    }
    if fewshot_file is not None:
        spec["dataset_kwargs"]["data_files"]["train"] = str(Path(fewshot_file).resolve())
        spec.update(training_split="train", fewshot_split="train")
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(spec), encoding="utf-8")
    return name


def run_lm_eval(
    model_location: str,
    adapter: str | None,
    task_names: list[str],
    include_dirs: list[str] | str | Path | None,
    batch_size: int | str = 16,
    num_fewshot: int | None = None,
    limit: int | None = None,
    dtype: str = "float32",
) -> dict[str, Any]:
    """lm-eval's ``simple_evaluate`` on an HF model dir (+ PEFT adapter), with per-sample logs."""
    lm_eval = _lm_eval()
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = HFLM(pretrained=model_location, peft=adapter, batch_size=batch_size, dtype=dtype, device=device)
    if isinstance(include_dirs, str | Path):
        include_dirs = [str(include_dirs)]
    manager = TaskManager(include_path=list(include_dirs) if include_dirs else None)
    return lm_eval.simple_evaluate(
        model=model,
        tasks=task_names,
        num_fewshot=num_fewshot,
        limit=limit,
        task_manager=manager,
        log_samples=True,
    )


def evaluate_with_lm_eval(
    tasks: str,
    model: str | None,
    adapter: str | None,
    data_files: list[str],
    options,
    output: Path,
    dtype: str,
    prefix: str = "",
    other_base: bool = False,
) -> dict[str, Any]:
    from paw.eval.api import write_results
    from paw.experiment.metadata import now, package_versions
    from paw.models.adapter_files import base_model_for
    from paw.models.resolve import resolve_model
    from paw.utils.io import dir_fingerprint

    model, _ = base_model_for(model, adapter, other_base=other_base)
    resolved = resolve_model(model)
    names = [t.strip() for t in tasks.split(",") if t.strip()]
    torch_dtype = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}.get(dtype, dtype)
    with tempfile.TemporaryDirectory() as tmp:
        run_names, include = [], []
        locals_ = dict(item.split("=", 1) for item in data_files if "=" in item)
        for name in names:
            if name in locals_:
                run_names.append(
                    local_task_yaml(name, locals_[name], Path(tmp), options.fewshot_files.get(name))
                )
                include.append(str(tmp))
            elif name.endswith((".yaml", ".yml")):
                include.append(str(Path(name).resolve().parent))
                run_names.append(yaml.safe_load(Path(name).read_text())["task"])
            else:
                run_names.append(LM_EVAL_TASKS.get(name, (None, name))[1])
        out = run_lm_eval(
            resolved.location,
            adapter,
            run_names,
            sorted(set(include)),
            options.batch_size,
            options.num_fewshot,
            options.limit,
            torch_dtype,
        )
    task_results = {}
    for name, run_name in zip(names, run_names, strict=True):
        raw = out["results"].get(run_name, {})
        metrics = {
            k.replace(",none", ""): v
            for k, v in raw.items()
            if k not in ("alias", "sample_len,none") and isinstance(v, int | float)
        }
        metrics["n"] = len(out.get("samples", {}).get(run_name, []))
        task_results[name] = metrics
    results = {
        "created": now(),
        "backend": "lm-eval",
        "model": {
            "name": model,
            "location": resolved.location,
            "adapter": adapter,
            "fingerprint": {"model": dir_fingerprint(resolved.location), "adapter": dir_fingerprint(adapter)},
        },
        "tasks": task_results,
        "versions": package_versions(("paw", "torch", "transformers", "peft", "lm_eval")),
    }
    write_results(results, {}, Path(output), prefix)
    return results
