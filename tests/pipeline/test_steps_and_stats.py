"""Pipeline pieces without training: the step plan, fingerprints, --quick-test sizes, the statistics."""

import pytest

from paw.config.loader import validate_dict
from paw.config.pipeline_schema import PipelineConfig
from paw.data.digest import file_digest
from paw.errors import PawError
from paw.pipeline import stats
from paw.pipeline.scheduler import shrink_for_quick_test
from paw.pipeline.steps import fingerprints, parse_steps, plan


def _config(**changes) -> PipelineConfig:
    data = {
        "source": {"name_or_path": "paw-tiny/qwen2"},
        "target": {"name_or_path": "paw-tiny/qwen2-upgrade"},
        "data": {"train_file": "paw-synth/arc-train"},
        "training": {
            "schedule": [{"steps": 300, "lr": 3e-3}, {"steps": 100, "lr": 3e-4}],
            "save": {"start_step": 300, "every": 25},
        },
        "eval": {"tasks": ["arc_easy"], "data_files": {"arc_easy": "paw-synth/arc_easy"}},
    }
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        node = data
        for key in path:
            node = node.setdefault(key, {})
        node[last] = value
    return validate_dict(data, "test.yaml", PipelineConfig)


def test_plan_runs_seeded_steps_once_per_seed():
    keys = [s.key for s in plan(_config(pipeline__seeds=2))]
    assert keys[0] == "1_eval_source_base" and keys[-1] == "7_eval_target_lora-seed43"
    assert sum(k.startswith("2_train_source") for k in keys) == 2
    assert sum(k.startswith("4_") for k in keys) == 1  # bases are evaluated once


def test_fingerprints_change_only_downstream_of_what_changed():
    base = _config()
    fp = fingerprints(base, plan(base))
    other = fingerprints(_config(transfer__method="project"), plan(base))
    changed = {k for k in fp if fp[k] != other[k]}
    assert changed == {"3_transfer-seed42", "5_eval_transferred-seed42"}
    evals = fingerprints(_config(eval__limit=10), plan(base))
    changed = {k for k in fp if fp[k] != evals[k]}
    # step 2's training (and so the transfer) does not depend on eval settings; its own eval does
    assert "2_train_source-seed42:train" not in changed and "3_transfer-seed42" not in changed
    assert {
        "1_eval_source_base",
        "2_train_source-seed42",
        "4_eval_target_base",
        "7_eval_target_lora-seed42",
    } <= changed
    assert "6_train_target-seed42" not in changed
    batch = fingerprints(_config(eval__batch_size=4), plan(base))
    assert batch == fp  # the batch size does not change scores


def test_quick_test_scales_the_schedule_and_checkpoints():
    quick = shrink_for_quick_test(_config())
    assert [s.steps for s in quick.training.schedule] == [15, 5]
    assert quick.training.max_steps == 20
    assert (quick.training.save.start_step, quick.training.save.every) == (15, 1)
    assert quick.data.max_samples == 200 and quick.eval.limit == 50
    assert quick.training.per_device_train_batch_size == 2


def test_parse_steps():
    assert parse_steps("1,3,5") == {1, 3, 5}
    assert parse_steps("4-7") == {4, 5, 6, 7}
    assert parse_steps("8-9") == {8, 9}
    assert parse_steps("1,8", _config(transfer__refine={"steps": 10})) == {1, 8}
    with pytest.raises(PawError, match=r"step 8 \(eval refined adapter\) runs only with a refine stage"):
        parse_steps("1,8", _config())
    for bad in ("0", "10", "a", ""):
        with pytest.raises(PawError, match="--steps"):
            parse_steps(bad)


def test_pipeline_needs_tasks_and_names_unknown_keys():
    with pytest.raises(PawError, match=r"test.yaml: eval.tasks: a pipeline needs"):
        _config(eval__tasks=[])
    with pytest.raises(PawError, match=r"transfer.methd: unknown key \(did you mean 'method'\?\)"):
        _config(transfer__methd="direct")
    with pytest.raises(
        PawError, match=r"calibration_data is read by methods align-act and align-fit only \(method: align\)"
    ):
        _config(transfer__method="align", transfer__calibration_data="paw-synth/arc-train")
    with pytest.raises(PawError, match=r"transfer.k sets the subspace rank .*align-fit has none"):
        _config(transfer__method="align-fit", transfer__k=8)


def test_a_refine_stage_adds_its_two_evals_per_seed_and_is_fingerprinted_by_its_data(tmp_path):
    data = tmp_path / "refine.jsonl"
    data.write_text('{"instruction": "Which is a kind of fruit?", "output": "apple"}\n')
    config = _config(pipeline__seeds=2, transfer__refine={"steps": 10, "data": str(data)})
    keys = [s.key for s in plan(config)]
    assert keys[-4:] == [
        "8_eval_refined-seed42",
        "8_eval_refined-seed43",
        "9_eval_refine_control-seed42",
        "9_eval_refine_control-seed43",
    ]
    assert not any(k.startswith(("8_", "9_")) for k in (s.key for s in plan(_config())))
    fp = fingerprints(config, plan(config))
    data.write_text('{"instruction": "Which is a kind of tool?", "output": "saw"}\n')  # new bytes, same path
    file_digest.cache_clear()  # one digest per file and process, as a run reads it
    other = fingerprints(config, plan(config))
    changed = {k.split("-")[0] for k in fp if fp[k] != other[k]}
    assert changed == {"3_transfer", "5_eval_transferred", "8_eval_refined", "9_eval_refine_control"}


def test_a_refine_stage_is_checked_where_it_is_set():
    with pytest.raises(PawError, match=r"transfer.refine.labels: .*'data' or 'source'"):
        _config(transfer__refine={"steps": 10, "labels": "teacher"})
    with pytest.raises(PawError, match=r"transfer.refine.data: the refine reads a local file"):
        _config(data={"hub_dataset": "org/data"}, transfer__refine={"steps": 10})
    quick = shrink_for_quick_test(_config(transfer__refine={"steps": 40, "examples": 500}))
    assert (quick.transfer.refine.steps, quick.transfer.refine.examples) == (
        2,
        200,
    )  # 40 × 20/400; train_samples


def test_a_refine_stage_refuses_several_processes_and_text_rows(tmp_path):
    from types import SimpleNamespace

    from paw.pipeline.scheduler import _check_refine

    config = _config(transfer__refine={"steps": 10, "labels": "source"})
    with pytest.raises(PawError, match="the refine stage runs in one process, and this pipeline runs on 2"):
        _check_refine(config, SimpleNamespace(many=True, size=2))
    text = tmp_path / "text.jsonl"
    text.write_text('{"text": "no prompt here"}\n')
    config = _config(transfer__refine={"steps": 10, "labels": "source", "data": str(text)})
    with pytest.raises(PawError, match=r"text.jsonl:1: a text row has no prompt"):
        _check_refine(config, SimpleNamespace(many=False, size=1))
    missing = _config(transfer__refine={"steps": 10, "data": str(tmp_path / "nope.jsonl")})
    with pytest.raises(PawError, match=r"transfer.refine.data .*nope.jsonl: file not found"):
        _check_refine(missing, SimpleNamespace(many=False, size=1))


def test_the_schema_knows_the_transfer_methods_the_registry_has():
    from typing import get_args

    from paw.config.pipeline_schema import CALIBRATED_METHODS, TransferMethod
    from paw.transfer.methods import CALIBRATED, METHODS

    assert set(get_args(TransferMethod)) == set(METHODS) and CALIBRATED_METHODS == CALIBRATED


def test_align_act_fits_on_the_training_data_unless_told():
    from paw.pipeline.step_runners import transfer_options

    assert transfer_options(_config(transfer__method="align-act")).calibration_data == "paw-synth/arc-train"
    told = _config(transfer__method="align-act", transfer__calibration_data="t.jsonl")
    assert transfer_options(told).calibration_data == "t.jsonl"
    assert transfer_options(_config(transfer__method="align")).calibration_data is None


def test_paired_delta_and_recovery_ratio():
    base = [0.0] * 100
    lora = [1.0] * 60 + [0.0] * 40
    half = [1.0] * 30 + [0.0] * 70
    delta = stats.paired_delta(lora, base, 1000, 0.95)
    assert delta.value == pytest.approx(0.6) and 0.45 < delta.low < 0.6 < delta.high < 0.75
    rr = stats.recovery_ratio(base, lora, half, 1000, 0.95)
    assert rr["value"] == pytest.approx(0.5) and rr["low"] < 0.5 < rr["high"] and rr["reason"] is None


def test_recovery_ratio_is_undefined_when_the_lora_gain_is_noise():
    base = [1.0, 0.0] * 50
    lora = [1.0, 0.0] * 49 + [1.0, 1.0]  # one more right answer in 100: inside the noise
    rr = stats.recovery_ratio(base, lora, lora, 1000, 0.95)
    assert rr["value"] is None and "not significant" in rr["reason"]
