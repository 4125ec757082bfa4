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


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_config_works_when_copied(path, tmp_path):
    """A user copies a shipped config next to their data: its `extends` still resolves (`paw:` names a file in the
    installed package, not a path relative to the repo)."""
    copy = tmp_path / path.name
    copy.write_text(path.read_text())
    load_config(copy, schema=_schema(path))


def test_packaged_extends_cannot_leave_the_package(tmp_path):
    from paw.errors import PawError

    config = tmp_path / "c.yaml"
    config.write_text("extends: paw:../../../etc/passwd\n")
    with pytest.raises(PawError, match="outside the paw package"):
        load_config(config, schema=PipelineConfig)
    config.write_text("extends: paw:pipeline/nope.yaml\n")
    with pytest.raises(PawError, match="extends 'paw:pipeline/nope.yaml', which does not exist"):
        load_config(config, schema=PipelineConfig)
