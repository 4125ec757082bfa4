"""Every shipped YAML validates, and its first comment is the command that runs it."""

from pathlib import Path

import pytest

from paw.config.loader import load_config, read_yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(p for p in (REPO / "configs").rglob("*.yaml") if "accelerate" not in p.parts)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_shipped_config_validates(path):
    profiles = read_yaml(path).get("profiles") or {}
    for profile in [None, *profiles]:
        load_config(path, profile=profile)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(REPO)))
def test_first_comment_is_the_command(path):
    first = path.read_text().splitlines()[0]
    assert first.startswith("# paw "), first
