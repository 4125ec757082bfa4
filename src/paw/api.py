"""paw's Python API: one function per CLI command, importable without loading torch (each imports on call).

from paw import api
run = api.train("configs/commonsense_qwen2.5_0.5b.yaml", ["model.name_or_path=paw-tiny/qwen2"])
api.evaluate("arc_easy", model="paw-tiny/qwen2", adapter=run.experiment.final_model, ...)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _config(config: str | Path | dict[str, Any], overrides: list[str] | None, schema: Any = None):
    from paw.config.loader import apply_overrides, load_config, resolve_paths, validate_dict
    from paw.config.schema import RunConfig

    schema = schema or RunConfig
    if isinstance(config, dict):
        return validate_dict(resolve_paths(apply_overrides(config, overrides or [])), "config", schema)
    return load_config(config, overrides or [], schema=schema)


def train(config: str | Path | dict[str, Any], overrides: list[str] | None = None, name: str | None = None):
    """``paw train``: a YAML path or a dict of sections; returns the TrainResult (``.experiment``, ``.report``)."""
    from paw.train.recipe import run_training

    stem = Path(config).stem if not isinstance(config, dict) else "run"
    return run_training(_config(config, overrides), name=name, config_stem=stem, command="paw.api.train")


def evaluate(
    tasks: str | list[str], model: str | None = None, adapter: str | Path | None = None, **kwargs: Any
):
    """``paw eval``: see ``paw.eval.api.evaluate`` for the options; returns the results dict."""
    from paw.eval.api import evaluate as run

    return run(tasks, model=model, adapter=str(adapter) if adapter else None, **kwargs)


def transfer(adapter: str | Path, target: str, output: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``paw transfer``: see ``paw.transfer.api.transfer``; returns the transfer report."""
    from paw.transfer.api import transfer as run

    return run(adapter, target, output, **kwargs)


def pipeline(config: str | Path | dict[str, Any], overrides: list[str] | None = None, **kwargs: Any):
    """``paw pipeline``: see ``paw.pipeline.scheduler.run_pipeline`` for the options."""
    from paw.config.pipeline_schema import PipelineConfig
    from paw.pipeline.scheduler import run_pipeline

    return run_pipeline(_config(config, overrides, PipelineConfig), **kwargs)


def infer(
    prompts: list[str], model: str | None = None, adapter: str | Path | None = None, **kwargs: Any
) -> list[str]:
    """``paw infer`` on plain prompts (templated as ``paw infer`` does); returns the generated texts."""
    from paw.infer.api import infer as run
    from paw.infer.inputs import InferInput

    results = run([InferInput(text=p) for p in prompts], model, str(adapter) if adapter else None, **kwargs)
    return [r["output"] for r in results["results"]]


def merge(adapter: str | Path, output: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``paw merge``: see ``paw.models.merge.merge_adapter``."""
    from paw.models.merge import merge_adapter

    return merge_adapter(adapter, output, **kwargs)


def export(source: str | Path, fmt: str, output: str | Path, **kwargs: Any) -> dict[str, Any]:
    """``paw export``: an adapter or experiment as ``gguf``, ``ollama`` or ``merged``; see ``paw.export.api.export``;
    returns what ``export_info.json`` records."""
    from paw.export.api import export as run

    return run(source, fmt, output, **kwargs)
