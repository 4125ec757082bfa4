"""Experiment tracking: TensorBoard events in the experiment dir by default; W&B, SwanLab and MLflow through
transformers' own integrations when ``tracking.backends`` names them (optional extras, imported only when used)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from paw.errors import PawError

HOSTED_TRACKERS = {"wandb": "wandb", "swanlab": "swanlab", "mlflow": "mlflow"}


def hosted_trackers(backends: list[str]) -> list[str] | str:
    """The ``report_to`` value for the hosted trackers asked for; a missing package is a PawError."""
    hosted = [b for b in backends if b in HOSTED_TRACKERS]
    for backend in hosted:
        if importlib.util.find_spec(HOSTED_TRACKERS[backend]) is None:
            raise PawError(
                f"tracking.backends: '{backend}' needs its package: pip install 'paw[{backend}]' "
                f"(or pip install {HOSTED_TRACKERS[backend]})"
            )
    return hosted or "none"


def tracker_defaults(backends: list[str], project: str, exp_dir: Path) -> dict[str, str]:
    """Settings the integrations read from the environment: the project name, and for MLflow a local store in
    the experiment dir (``mlruns/``) when no tracking server is configured. API keys are never touched."""
    defaults: dict[str, str] = {}
    if "wandb" in backends:
        defaults["WANDB_PROJECT"] = project
    if "swanlab" in backends:
        defaults["SWANLAB_PROJECT"] = project
    if "mlflow" in backends:
        defaults["MLFLOW_EXPERIMENT_NAME"] = project
        defaults["MLFLOW_TRACKING_URI"] = (exp_dir / "mlruns").resolve().as_uri()
    return defaults


@contextmanager
def tracker_environment(backends: list[str], project: str, exp_dir: Path) -> Iterator[dict[str, str]]:
    """Set ``tracker_defaults`` where the user has not set them, for one training; restore afterwards."""
    added = {k: v for k, v in tracker_defaults(backends, project, exp_dir).items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield added
    finally:
        for key in added:
            os.environ.pop(key, None)
