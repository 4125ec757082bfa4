"""Hosted-tracker settings: set for one training where the user has not set them, then restored."""

import os

from paw.train.tracking import tracker_defaults, tracker_environment


def test_tracker_defaults_name_the_project_and_keep_mlflow_local(tmp_path):
    defaults = tracker_defaults(["tensorboard", "wandb", "mlflow"], "study", tmp_path)
    assert defaults["WANDB_PROJECT"] == "study" and defaults["MLFLOW_EXPERIMENT_NAME"] == "study"
    assert defaults["MLFLOW_TRACKING_URI"] == (tmp_path / "mlruns").resolve().as_uri()
    assert tracker_defaults(["tensorboard"], "study", tmp_path) == {}


def test_tracker_environment_never_overrides_the_user_and_restores(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_PROJECT", "mine")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with tracker_environment(["wandb", "mlflow"], "study", tmp_path) as added:
        assert os.environ["WANDB_PROJECT"] == "mine" and "WANDB_PROJECT" not in added
        assert os.environ["MLFLOW_TRACKING_URI"].endswith("/mlruns")
    assert "MLFLOW_TRACKING_URI" not in os.environ and os.environ["WANDB_PROJECT"] == "mine"
