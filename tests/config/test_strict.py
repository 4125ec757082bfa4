"""Strict parsing: a key given twice is an error with both lines, a boolean is not a number, and `paw validate`
judges every file it is given."""

from __future__ import annotations

import pytest

from paw.config.loader import read_yaml, validate_dict
from paw.errors import PawError
from tests.conftest import run_paw, small_config


def test_a_duplicate_key_is_an_error_naming_both_lines(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  name_or_path: paw-tiny/qwen2\npeft:\n  r: 8\n  alpha: 16\n  r: 64\n")
    with pytest.raises(
        PawError, match=r"c.yaml:6: invalid YAML: duplicate key 'r' \(first given at line 4\)"
    ):
        read_yaml(path)


def test_yaml_anchors_and_merges_still_work(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("base: &b {r: 8, alpha: 16}\npeft:\n  <<: *b\n  alpha: 32\n")
    assert read_yaml(path)["peft"] == {"r": 8, "alpha": 32}


@pytest.mark.parametrize(
    "section, key", [("peft", "r"), ("training", "learning_rate"), ("data", "max_length")]
)
def test_a_boolean_is_not_a_number(tmp_path, section, key):
    config = small_config(tmp_path / "t.jsonl", tmp_path)
    config[section][key] = True
    with pytest.raises(PawError, match=rf"{section}.{key}: expected a number, got the boolean true"):
        validate_dict(config, "c.yaml")


def test_booleans_stay_booleans(tmp_path):
    config = small_config(tmp_path / "t.jsonl", tmp_path)
    config["data"]["packing"] = True
    assert validate_dict(config, "c.yaml").data.packing is True


def test_validate_reports_every_file(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("model:\n  name_or_path: paw-tiny/qwen2\ndata:\n  train_file: x.jsonl\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name_or_path: paw-tiny/qwen2\n  name_or_path: paw-tiny/llama\n")
    typo = tmp_path / "typo.yaml"
    typo.write_text("model:\n  name_or_path: paw-tiny/qwen2\npeft:\n  rank: 8\n")
    done = run_paw("validate", str(bad), str(good), str(typo), "--schema-only")
    assert done.returncode == 2
    assert f"ok {good}" in done.stderr
    assert f"invalid {bad}: {bad}:3: invalid YAML: duplicate key 'name_or_path'" in done.stderr
    assert f"invalid {typo}" in done.stderr and "peft.rank" in done.stderr
    assert "2 of 3 config(s) invalid" in done.stderr


def test_a_rank_no_module_can_hold_is_refused(tmp_path, alpaca_file):
    from paw.train.recipe import prepare

    config = small_config(alpaca_file, tmp_path)
    config["peft"]["r"] = 100  # paw-tiny/qwen2's k_proj maps 64 → 32
    with pytest.raises(PawError, match=r"peft.r 100 exceeds .*k_proj \(64→32\).*use peft.r ≤ 32"):
        prepare(validate_dict(config, "c.yaml"))
