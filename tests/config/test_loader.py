from pathlib import Path

import pytest

from paw.config.loader import dump_config, load_config
from paw.errors import PawError
from tests.conftest import write_config

BASE = {"model": {"name_or_path": "paw-tiny/qwen2"}, "data": {"train_file": "train.jsonl"}}


def _load(tmp_path: Path, data: dict, overrides=(), profile=None):
    return load_config(write_config(tmp_path / "c.yaml", data), list(overrides), profile, cwd=tmp_path)


def test_minimal_config_gets_defaults_and_absolute_paths(tmp_path):
    config = _load(tmp_path, BASE)
    assert config.peft.method == "lora" and config.training.schedule == "constant"
    assert config.data.train_file == str(tmp_path / "train.jsonl")
    assert config.experiment.root == "experiments"


def test_unknown_key_suggests_the_right_one(tmp_path):
    with pytest.raises(
        PawError, match=r"c\.yaml: model\.name_or_pat: unknown key \(did you mean 'name_or_path'\?\)"
    ):
        _load(tmp_path, {**BASE, "model": {"name_or_pat": "x", "name_or_path": "y"}})


def test_unknown_section_suggests(tmp_path):
    with pytest.raises(PawError, match=r"unknown section 'trainig' \(did you mean 'training'\?\)"):
        _load(tmp_path, {**BASE, "trainig": {}})


def test_wrong_type_names_field_and_value(tmp_path):
    with pytest.raises(PawError, match=r"training\.max_steps: .*integer.*'many'"):
        _load(tmp_path, {**BASE, "training": {"max_steps": "many"}})


def test_training_passes_through_trainingarguments_fields(tmp_path):
    config = _load(
        tmp_path, {**BASE, "training": {"weight_decay": 0.1, "max_grad_norm": 0.5, "optim": "adamw_torch"}}
    )
    assert config.training.passthrough == {"weight_decay": 0.1, "max_grad_norm": 0.5, "optim": "adamw_torch"}
    assert "weight_decay: 0.1" in dump_config(config)


def test_training_unknown_key_suggests(tmp_path):
    with pytest.raises(
        PawError, match=r"training\.weight_decy: unknown key \(did you mean 'weight_decay'\?\)"
    ):
        _load(tmp_path, {**BASE, "training": {"weight_decy": 0.1}})


def test_training_passthrough_type_is_checked(tmp_path):
    with pytest.raises(PawError, match=r"training\.weight_decay: must be float"):
        _load(tmp_path, {**BASE, "training": {"weight_decay": "lots"}})


def test_keys_paw_manages_are_refused_with_the_paw_way(tmp_path):
    with pytest.raises(PawError, match=r"training\.save_steps: is set by paw: use training\.save\.every"):
        _load(tmp_path, {**BASE, "training": {"save_steps": 10}})


def test_multi_stage_schedule_sets_and_checks_max_steps(tmp_path):
    stages = [{"steps": 75, "lr": 1e-4}, {"steps": 50, "lr": 1e-5}]
    assert _load(tmp_path, {**BASE, "training": {"schedule": stages}}).training.max_steps == 125
    with pytest.raises(PawError, match="max_steps is 100 but the schedule's stages add up to 125"):
        _load(tmp_path, {**BASE, "training": {"schedule": stages, "max_steps": 100}})


def test_overrides_are_parsed_as_yaml(tmp_path):
    config = _load(
        tmp_path, BASE, ["training.max_steps=7", "peft.target_modules=[q_proj,v_proj]", "model.dtype=fp32"]
    )
    assert config.training.max_steps == 7
    assert config.peft.target_modules == ["q_proj", "v_proj"]
    assert config.model.dtype == "fp32"


def test_bad_override_syntax(tmp_path):
    with pytest.raises(PawError, match="expected key=value"):
        _load(tmp_path, BASE, ["training.max_steps"])


def test_extends_and_profiles(tmp_path):
    write_config(tmp_path / "base.yaml", {**BASE, "peft": {"r": 4}, "training": {"max_steps": 3}})
    child = {
        "extends": "base.yaml",
        "peft": {"alpha": 8},
        "profiles": {
            "server": {"training": {"per_device_train_batch_size": 32}, "paths": {"models_dir": "/m"}}
        },
    }
    config = _load(tmp_path, child)
    assert (config.peft.r, config.peft.alpha, config.training.max_steps) == (4, 8, 3)
    assert config.training.per_device_train_batch_size == 4
    server = _load(tmp_path, child, profile="server")
    assert server.training.per_device_train_batch_size == 32 and server.paths.models_dir == "/m"
    with pytest.raises(PawError, match="unknown profile 'sever' \\(did you mean 'server'\\?\\)"):
        _load(tmp_path, child, profile="sever")


def test_extends_cycle_and_missing_parent(tmp_path):
    write_config(tmp_path / "a.yaml", {"extends": "b.yaml"})
    write_config(tmp_path / "b.yaml", {"extends": "a.yaml"})
    with pytest.raises(PawError, match="cycle"):
        load_config(tmp_path / "a.yaml")
    write_config(tmp_path / "c.yaml", {"extends": "nope.yaml"})
    with pytest.raises(PawError, match="extends 'nope.yaml', which does not exist"):
        load_config(tmp_path / "c.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("model:\n  name_or_path: [unclosed\ndata: {}\n")
    with pytest.raises(PawError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_config(tmp_path / "bad.yaml")


def test_yaml_is_loaded_safely(tmp_path):
    (tmp_path / "evil.yaml").write_text("model: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(PawError, match="invalid YAML"):
        load_config(tmp_path / "evil.yaml")


def test_missing_config_file(tmp_path):
    with pytest.raises(PawError, match="config file not found"):
        load_config(tmp_path / "none.yaml")
