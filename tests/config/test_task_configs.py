"""The shipped task configs: their offline smoke command (second line of each file) runs, and their dataset mapping
turns rows in the dataset's own schema into the format the config names."""

import json
import shlex

import pytest

from paw.data.synthetic import write_jsonl
from tests.conftest import REPO, run_paw

TASK_CONFIGS = ["glue_mrpc", "metamath_qa", "gsm8k", "code_feedback"]
OBJECTIVE_CONFIGS = ["dpo_ultrafeedback", "kto_mix", "grpo_gsm8k"]
# a few rows in each dataset's native field names (as on the hub)
NATIVE_ROWS = {
    "glue_mrpc": [
        {"sentence1": f"It rained on day {i}.", "sentence2": f"Day {i} was rainy.", "label": i % 2, "idx": i}
        for i in range(8)
    ],
    "metamath_qa": [
        {
            "query": f"What is {i} + {i}?",
            "response": f"{i} + {i} = {2 * i}. The answer is: {2 * i}",
            "type": "GSM_Rephrased",
        }
        for i in range(8)
    ],
    "gsm8k": [
        {
            "question": f"Tom has {i} apples and buys {i}. How many?",
            "answer": f"{i}+{i}={2 * i}\n#### {2 * i}",
        }
        for i in range(8)
    ],
    "code_feedback": [
        {"query": f"Write a function returning {i}.", "answer": f"def f():\n    return {i}"} for i in range(8)
    ],
    "dpo_ultrafeedback": [  # HuggingFaceH4/ultrafeedback_binarized: whole conversations, the prompt repeated
        {
            "prompt": f"Name a number above {i}.",
            "prompt_id": f"id{i}",
            "chosen": [
                {"role": "user", "content": f"Name a number above {i}."},
                {"role": "assistant", "content": f"{i + 1}"},
            ],
            "rejected": [
                {"role": "user", "content": f"Name a number above {i}."},
                {"role": "assistant", "content": f"{i - 1}"},
            ],
            "score_chosen": 8.0,
            "score_rejected": 2.0,
        }
        for i in range(8)
    ],
    "kto_mix": [  # trl-lib/kto-mix-14k: chat prompt, one-message completion, a boolean label
        {
            "prompt": [{"role": "user", "content": f"Name a number above {i}."}],
            "completion": [{"role": "assistant", "content": f"{i + 1 - 2 * (i % 2)}"}],
            "label": i % 2 == 0,
        }
        for i in range(8)
    ],
}
NATIVE_ROWS["grpo_gsm8k"] = NATIVE_ROWS["gsm8k"]


def _smoke_command(name: str) -> list[str]:
    second = (REPO / "configs" / f"{name}.yaml").read_text().splitlines()[1]
    assert second.startswith("# Offline smoke run: paw "), second
    return shlex.split(second.removeprefix("# Offline smoke run: paw "))


@pytest.mark.slow
@pytest.mark.parametrize("name", TASK_CONFIGS + OBJECTIVE_CONFIGS)
def test_offline_smoke_command_trains(tmp_path, name):
    args = [a.replace("configs/", str(REPO / "configs") + "/") for a in _smoke_command(name)]
    result = run_paw(
        *args,
        "training.max_steps=3",
        "training.eval_steps=null",
        f"experiment.root={tmp_path}",
        "--name",
        "smoke",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "smoke" / "metadata.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("name", OBJECTIVE_CONFIGS)
def test_objective_configs_read_their_datasets_native_rows(tmp_path, name):
    """The DPO/KTO/GRPO configs' data settings read the hub datasets' own rows (as `paw train --validate-only`
    does, in this process: the CLI path is the task configs' test below)."""
    from paw.config.loader import load_config
    from paw.train.recipe import prepare

    data = write_jsonl(NATIVE_ROWS[name], tmp_path / "native.jsonl")
    overrides = [
        "model.name_or_path=paw-tiny/llama",
        "data.hub_dataset=null",
        f"data.train_file={data}",
        "data.hub_val_split=null",
        "training.eval_steps=null",
    ]
    report = prepare(load_config(REPO / "configs" / f"{name}.yaml", overrides), load_model=False).data.report
    expected = {
        "dpo_ultrafeedback": "preference pairs",
        "kto_mix": "preference unpaired",
        "grpo_gsm8k": "prompts",
    }
    assert report["format"] == expected[name]
    assert report["train"]["examples"] == len(NATIVE_ROWS[name]) and report["train"]["dropped"] == 0
    assert report["train"]["prompt_forms" if name != "grpo_gsm8k" else "fields"]


@pytest.mark.parametrize("name", TASK_CONFIGS)
def test_dataset_mapping_reads_the_native_schema(tmp_path, name):
    data = write_jsonl(NATIVE_ROWS[name], tmp_path / "native.jsonl")
    model = "paw-tiny/qwen2" if name == "glue_mrpc" else "paw-tiny/llama"
    extra = (
        ["peft.target_modules=all-linear", "data.hub_val_split=null", "data.val_ratio=0.25"]
        if name == "glue_mrpc"
        else []
    )
    result = run_paw(
        "train",
        str(REPO / "configs" / f"{name}.yaml"),
        f"model.name_or_path={model}",
        "data.hub_dataset=null",
        f"data.train_file={data}",
        "model.gradient_checkpointing=false",
        *extra,
        "--validate-only",
    )
    assert result.returncode == 0, result.stderr
    fmt = "classification" if name == "glue_mrpc" else "alpaca"
    assert f"data format       │ {fmt}" in result.stderr or fmt in result.stderr


def test_validate_accepts_every_shipped_config_offline(tmp_path):
    configs = [str(p) for p in sorted((REPO / "configs").glob("*.yaml"))]
    result = run_paw("validate", *configs, "--schema-only", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("config is valid") == len(configs)
