"""The verifiable rewards GRPO scores completions with, and the objective sections of the config."""

import pytest

from paw.config.objectives import GrpoConfig, Reward
from paw.errors import PawError
from paw.train.rewards import final_number, reward_function, stated_letter


def _score(spec: dict, completions: list, **row) -> list[float]:
    return reward_function(Reward(**spec))(prompts=["p"] * len(completions), completions=completions, **row)


def test_number_reads_gsm8k_answers_and_the_final_number():
    assert final_number("48/2 = 24 so she sold 72 clips.\n#### 72") == 72
    assert final_number("about 1,234.0 apples") == 1234
    assert final_number("no digits") is None
    answers = ["Natalia sold 48 + 24 = 72 clips.\n#### 72"] * 4
    completions = ["She sold 72 clips in all.", "#### 72", "#### 71 (not 72)", "seventy-two"]
    assert _score({"kind": "number"}, completions, answer=answers) == [1.0, 1.0, 0.0, 0.0]


def test_choice_reads_the_letter_a_completion_states():
    assert [stated_letter(t) for t in ("Answer: (B) since", "The answer is d", "C. cats", "I am sure")] == [
        "B",
        "D",
        "C",
        None,
    ]
    assert _score({"kind": "choice", "field": "gold"}, ["(A)", "B"], gold=["A", "A"]) == [1.0, 0.0]


def test_exact_takes_one_answer_or_a_list_and_chat_completions():
    chat = [[{"role": "assistant", "content": " Fruit. "}], [{"role": "assistant", "content": "tool"}]]
    assert _score({"kind": "exact"}, chat, answer=["fruit", "fruit"]) == [1.0, 0.0]
    kinds = [["fruit", "tool"], ["fruit", "tool"]]
    assert _score({"kind": "exact", "field": "kinds"}, ["tool", "goat"], kinds=kinds) == [1.0, 0.0]
    with pytest.raises(PawError, match="reward exact:answer: the rows have no field 'answer'"):
        _score({"kind": "exact"}, ["x"], label=["x"])


def test_regex_and_user_functions(tmp_path, monkeypatch):
    assert _score({"kind": "regex", "pattern": r"^\d+$"}, ["42", "42 apples"]) == [1.0, 0.0]
    (tmp_path / "my_rewards.py").write_text(
        "def shorter(prompts, completions, **row):\n    return [1.0 / (1 + len(c)) for c in completions]\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _score({"kind": "function", "function": "my_rewards:shorter"}, ["", "abc"]) == [1.0, 0.25]
    with pytest.raises(PawError, match="has no function 'longer'"):
        reward_function(Reward(kind="function", function="my_rewards:longer"))
    with pytest.raises(PawError, match="cannot import 'no_such_module'"):
        reward_function(Reward(kind="function", function="no_such_module:f"))


def test_reward_specs_are_checked_when_the_config_is_read():
    with pytest.raises(ValueError, match="a regex reward needs `pattern`"):
        Reward(kind="regex")
    with pytest.raises(ValueError, match="not a valid regular expression"):
        Reward(kind="regex", pattern="(")
    with pytest.raises(ValueError, match="package.module:name"):
        Reward(kind="function", function="nocolon")
    with pytest.raises(ValueError, match="the same reward is listed twice"):
        GrpoConfig(rewards=[{"kind": "exact"}, {"kind": "exact"}])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"preference": {"beta": 0.5}}, "preference: read only with training.objective dpo or kto"),
        ({"grpo": {"num_generations": 8}, "training": {"objective": "dpo"}}, "grpo: read only with"),
        ({"training": {"objective": "dpo"}, "peft": {"task_type": "SEQ_CLS"}}, "needs CAUSAL_LM"),
        ({"training": {"objective": "dpo"}, "preference": {"loss_type": "kto"}}, "is not a DPO loss"),
        ({"training": {"objective": "kto"}, "data": {"format": "alpaca"}}, "leave data.format at auto"),
        ({"training": {"objective": "grpo"}, "data": {"packing": True}}, "data.packing: SFT only"),
        ({"training": {"objective": "ppo"}}, "training.objective"),
        ({"training": {"objective": "orpo"}, "preference": {"loss_type": "ipo"}}, "orpo has one loss"),
    ],
)
def test_objective_sections_refuse_what_the_objective_does_not_read(tmp_path, overrides, message):
    from paw.config.loader import load_config
    from tests.conftest import write_config

    config = {"model": {"name_or_path": "paw-tiny/qwen2"}, "data": {"train_file": "t.jsonl"}}
    for section, values in overrides.items():
        config[section] = {**config.get(section, {}), **values}
    with pytest.raises(PawError, match=message):
        load_config(write_config(tmp_path / "c.yaml", config))


def test_an_unimportable_reward_fails_before_the_experiment_exists(tmp_path):
    from paw.config.loader import load_config
    from paw.data.synthetic import write_jsonl
    from paw.data.synthetic_preference import generate_prompts
    from paw.train.recipe import run_training
    from tests.conftest import write_config

    config = {
        "model": {"name_or_path": "paw-tiny/qwen2"},
        "data": {"train_file": str(write_jsonl(generate_prompts(8), tmp_path / "p.jsonl"))},
        "training": {"objective": "grpo", "max_steps": 1},
        "grpo": {"rewards": [{"kind": "function", "function": "no_such_module:f"}]},
        "experiment": {"root": str(tmp_path / "exps")},
    }
    with pytest.raises(PawError, match="cannot import 'no_such_module'"):
        run_training(load_config(write_config(tmp_path / "c.yaml", config)), name="bad")
    assert not (tmp_path / "exps" / "bad").exists()
