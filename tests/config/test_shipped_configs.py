"""Every shipped YAML validates (pipeline configs as pipelines), and its first comment is the command that runs it."""

from pathlib import Path

import pytest

from paw.config.loader import load_config, read_yaml
from paw.config.pipeline_schema import PipelineConfig
from paw.config.schema import RunConfig

REPO = Path(__file__).resolve().parents[2]
PACKAGED = REPO / "src" / "paw" / "pipeline" / "quick_test.yaml"
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "accelerate" not in p.parts) + [PACKAGED]


def _schema(path: Path):
    return PipelineConfig if "pipeline" in path.parts else RunConfig


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_config_validates(path):
    profiles = read_yaml(path).get("profiles") or {}
    for profile in [None, *profiles]:
        load_config(path, profile=profile, schema=_schema(path))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_first_comment_is_the_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# paw "), first
