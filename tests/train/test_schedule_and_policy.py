import math

import pytest

from paw.train.checkpoint import CheckpointPolicy, list_checkpoints, prune, publish, staging_dir
from paw.train.schedule import StageSpec, make_scheduler, multi_stage_lr, named_lr_factor, stage_switch_steps

RECIPE = [StageSpec(75, 1e-4), StageSpec(50, 1e-5)]


def test_multi_stage_lr_switches_after_step_75():
    assert [multi_stage_lr(s, RECIPE) for s in (1, 75, 76, 125)] == [1e-4, 1e-4, 1e-5, 1e-5]
    assert stage_switch_steps(RECIPE) == [76]


def test_scheduler_gives_the_lr_of_each_step():
    import torch

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    sched = make_scheduler(opt, 1e-4, "constant", 125, 0, RECIPE)
    used = []
    for _ in range(125):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert used[:75] == pytest.approx([1e-4] * 75) and used[75:] == pytest.approx([1e-5] * 50)


def test_named_schedules():
    assert named_lr_factor(5, "constant", 100, 10) == 0.5
    assert named_lr_factor(11, "linear", 110, 10) == 1.0
    assert named_lr_factor(110, "linear", 110, 10) == pytest.approx(0.01)
    assert named_lr_factor(11, "cosine", 110, 10) == 1.0
    assert named_lr_factor(60, "cosine", 110, 10) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.49)))


def test_recipe_checkpoint_policy_saves_the_last_50_steps():
    policy = CheckpointPolicy(start_step=75, every=1)
    assert policy.planned(125) == list(range(76, 126))
    assert CheckpointPolicy(start_step=0, every=10).planned(35) == [10, 20, 30]
    assert CheckpointPolicy().planned(10) == []


def test_publish_is_atomic_and_prune_keeps_newest(tmp_path):
    for step in (1, 2, 3):
        staged = staging_dir(tmp_path) / f"checkpoint-{step}"
        staged.mkdir(parents=True)
        (staged / "adapter_model.safetensors").write_bytes(b"x")
        publish(tmp_path, step, {"loss": 1.0})
    (staging_dir(tmp_path) / "checkpoint-4").mkdir(parents=True)  # a crash mid-save: never listed
    (tmp_path / "checkpoint-5").mkdir()  # no checkpoint_info.json: not complete, not listed
    assert [s for s, _ in list_checkpoints(tmp_path)] == [1, 2, 3]
    prune(tmp_path, keep_last=2)
    assert [s for s, _ in list_checkpoints(tmp_path)] == [2, 3]


def test_a_run_whose_gradients_vanished_is_not_completed():
    from paw.train.recipe import stalled_reason

    moving = [{"step": s, "loss": 2.0, "grad_norm": 0.5} for s in range(1, 6)]
    assert stalled_reason(moving) is None
    assert stalled_reason([{"step": 1, "loss": 2.0, "grad_norm": 0.0}]) is None  # too few records to tell
    stuck = moving + [{"step": s, "loss": 1.0986, "grad_norm": 0.0} for s in range(6, 9)]
    assert "gradient norm was 0 on the last 3 logged steps (loss stuck at 1.0986)" in stalled_reason(stuck)
