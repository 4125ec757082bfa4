"""Every `paw ...` command in the README runs as written, offline, on tiny models.

The README's commands are read from its bash blocks. Each one is either run here, in order, in a fresh directory
holding a copy of configs/ (what a user sees after cloning), or skipped with the reason (network, GPU, or run by a
named test). A README command not listed in ``COMMANDS`` fails the test, so a new example cannot go unchecked.
A listed command is the README's text with only these substitutions: placeholders (``<name>``, ``CONFIG``, ``M``,
``A``, ``"..."``) filled in, a hub model swapped for ``paw-tiny/qwen2`` (no network), and the training schedule
shortened (``FAST``).
"""

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.conftest import REPO, run_paw

pytestmark = pytest.mark.slow

TRAIN = "configs/commonsense_qwen2.5_0.5b.yaml model.name_or_path=paw-tiny/qwen2 data.train_file=train.jsonl"
FAST = "'training.schedule=[{steps: 2, lr: 1.0e-4}, {steps: 2, lr: 1.0e-5}]' training.save.start_step=3"
ADAPTER = "experiments/<name>/models/final_model"

# README command -> what runs here (None: skipped, the reason in SKIPPED)
COMMANDS: dict[str, str | None] = {
    "paw synth train.jsonl --rows 400": "paw synth train.jsonl --rows 400",
    f"paw train {TRAIN}": f"paw train {TRAIN} {FAST} experiment.name=readme",
    "paw train CONFIG --validate-only": f"paw train {TRAIN} --validate-only",
    "paw train CONFIG --dry-run": f"paw train {TRAIN} --dry-run",
    "paw train --resume experiments/<name>": "paw train --resume experiments/readme",
    "paw validate configs/*.yaml": "paw validate configs/*.yaml",
    "paw doctor": "paw doctor",
    "paw models": "paw models",
    "paw download qwen2.5-0.5b --models-dir /data/models": None,
    f'paw infer --adapter {ADAPTER} --input-text "..."': (
        'paw infer --adapter experiments/readme/models/final_model --input-text "Name a primary colour."'
    ),
    "paw infer --model M [--adapter A] --input-file in.jsonl --output-file results.json --temperature 0.7 "
    "--top-p 0.9": "paw infer --model paw-tiny/qwen2 --adapter experiments/readme/models/final_model "
    "--input-file in.jsonl --output-file results.json --temperature 0.7 --top-p 0.9",
    f"paw merge --adapter {ADAPTER} --output merged/": (
        "paw merge --adapter experiments/readme/models/final_model --output merged/"
    ),
    "paw export experiments/<name> --format gguf|ollama|vllm|merged --output exported/": None,
    "paw eval --model paw-shape/qwen2.5-0.5b --tasks arc_easy --data-file arc.jsonl": None,
    "paw train configs/commonsense_qwen2.5_0.5b.yaml model.name_or_path=paw-shape/qwen2.5-0.5b@4 "
    "data.train_file=train.jsonl": None,
    "paw synth arc.jsonl --schema arc_easy --rows 100": "paw synth arc.jsonl --schema arc_easy --rows 100",
    "paw eval --model paw-tiny/qwen2 --tasks arc_easy --data-file arc.jsonl": (
        "paw eval --model paw-tiny/qwen2 --tasks arc_easy --data-file arc.jsonl"
    ),
    f"paw eval --model qwen2.5-0.5b --adapter {ADAPTER} --tasks arc_challenge,piqa "
    "--data-file arc_challenge=ARC-Challenge-Test.jsonl --data-file piqa=piqa_validation.jsonl --log-samples": (
        "paw eval --model paw-tiny/qwen2 --adapter experiments/readme/models/final_model "
        "--tasks arc_challenge,piqa --data-file arc_challenge=ARC-Challenge-Test.jsonl "
        "--data-file piqa=piqa_validation.jsonl --log-samples"
    ),
    "paw eval experiments/<name> --tasks arc_easy --data-file arc.jsonl": (
        "paw eval experiments/readme --tasks arc_easy --data-file arc.jsonl"
    ),
    "paw eval --backend lm-eval --tasks mmlu_abstract_algebra --model ...": None,
    f"paw transfer --adapter {ADAPTER} --target paw-tiny/qwen2-upgrade --output moved/ [--source BASE] "
    "[--method auto|direct|project|align|align-act|align-fit] [--depth name|proportional|cka] [--k 64|0.9] "
    "[--similarity-threshold 0.2] [--chance-multiple 3] [--calibration-data FILE] "
    "[--refine-data FILE [--refine-steps 50] [--refine-examples 100] [--refine-labels data|source] "
    "[--refine-temperature 0]]": (
        "paw transfer --adapter experiments/readme/models/final_model --target paw-tiny/qwen2-upgrade --output moved/ "
        "--source paw-tiny/qwen2 --method auto --depth name --similarity-threshold 0.2 --chance-multiple 3"
    ),
    "paw zoo list": "paw zoo list",
    "paw demo --zoo llama:qwen2-s": None,
    "paw transfer --adapter experiments/<name>/models/final_model --target paw-zoo/qwen2-s --method align "
    "--output moved/": None,
    "paw pipeline configs/pipeline/quick_test.yaml": None,
    "paw pipeline configs/pipeline/gemma2-2b_to_qwen2.5-1.5b.yaml --profile local --quick-test": None,
    "paw pipeline CONFIG --seeds 3 | --steps 1,4 | --resume [--name NAME]": None,
    "paw exp list [--root experiments]": "paw exp list --root experiments",
    "paw exp show NAME": "paw exp show readme",
    "paw exp compare A B C": "paw exp compare readme readme-2",
}
SKIPPED = {
    "paw export experiments/<name> --format gguf|ollama|vllm|merged --output exported/": "llama.cpp's converter knows "
    "published tokenizers only, not paw-tiny's; tests/export/test_export.py exports a model with the real Qwen2 "
    "tokenizer in every format",
    "paw download qwen2.5-0.5b --models-dir /data/models": "needs the Hugging Face hub",
    "paw eval --model paw-shape/qwen2.5-0.5b --tasks arc_easy --data-file arc.jsonl": "a 0.5B-parameter stand-in; "
    "tests/test_real_shapes.py trains, evaluates, transfers, merges and infers on paw-shape stand-ins",
    "paw train configs/commonsense_qwen2.5_0.5b.yaml model.name_or_path=paw-shape/qwen2.5-0.5b@4 "
    "data.train_file=train.jsonl": "as above (tests/test_real_shapes.py)",
    "paw eval --backend lm-eval --tasks mmlu_abstract_algebra --model ...": "the task's data is on the hub; "
    "tests/eval/test_matches_lm_eval.py runs the lm-eval backend on local files",
    "paw pipeline configs/pipeline/quick_test.yaml": "what paw demo runs: tests/pipeline/test_pipeline_e2e.py",
    "paw demo --zoo llama:qwen2-s": "needs the full zoo; tests/models/test_zoo.py checks its refusals and the "
    "quick-test pipeline it runs is tests/pipeline/test_pipeline_e2e.py's",
    "paw transfer --adapter experiments/<name>/models/final_model --target paw-zoo/qwen2-s --method align "
    "--output moved/": "needs the full zoo (~45 min to build); tests/models/test_zoo.py moves a LoRA between "
    "micro-zoo models of two families",
    "paw pipeline configs/pipeline/gemma2-2b_to_qwen2.5-1.5b.yaml --profile local --quick-test": "hub models",
    "paw pipeline CONFIG --seeds 3 | --steps 1,4 | --resume [--name NAME]": "a synopsis of options, each run "
    "by tests/pipeline/test_pipeline_e2e.py",
}


def readme_commands() -> list[str]:
    """The `paw ...` lines of the README's bash blocks, continuation lines joined, comments dropped."""
    commands, block, pending = [], False, ""
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            block = line.strip() == "```bash"
            continue
        if not block:
            continue
        line = pending + line.strip()
        if line.endswith("\\"):
            pending = line[:-1].strip() + " "
            continue
        pending = ""
        command = re.split(r"\s+#\s", line)[0].strip()
        if command.startswith("paw "):
            commands.append(" ".join(command.split()))
    return commands


def test_every_readme_command_is_listed():
    found = readme_commands()
    assert set(found) == set(COMMANDS), (
        f"README commands not in COMMANDS: {sorted(set(found) - set(COMMANDS))}; "
        f"listed but gone from the README: {sorted(set(COMMANDS) - set(found))}"
    )
    assert {c for c, run in COMMANDS.items() if run is None} == set(SKIPPED)


def _argv(command: str, cwd: Path) -> list[str]:
    argv = []
    for word in shlex.split(command)[1:]:
        matches = sorted(cwd.glob(word)) if "*" in word else []
        argv += [str(p.relative_to(cwd)) for p in matches] or [word]
    return argv


def test_readme_commands_run_as_written(tmp_path):
    import shutil

    shutil.copytree(REPO / "configs", tmp_path / "configs")
    (tmp_path / "in.jsonl").write_text(
        "\n".join(json.dumps({"prompt": p}) for p in ("Name a colour.", "Say hi.")) + "\n"
    )
    for name, schema in (("ARC-Challenge-Test.jsonl", "arc_challenge"), ("piqa_validation.jsonl", "piqa")):
        assert run_paw("synth", name, "--schema", schema, "--rows", "8", cwd=tmp_path).returncode == 0
    ran = []
    for readme, command in COMMANDS.items():
        if command is None:
            continue
        if command.startswith("paw exp compare"):  # a second run to compare with
            second = COMMANDS[f"paw train {TRAIN}"].replace("name=readme", "name=readme-2")
            done = run_paw(*_argv(second, tmp_path), cwd=tmp_path)
            assert done.returncode == 0, done.stderr
        done = run_paw(*_argv(command, tmp_path), cwd=tmp_path)
        if (
            command == "paw validate configs/*.yaml"
        ):  # offline, the shipped configs' hub models and data are absent
            verdicts = [
                line for line in done.stderr.splitlines() if re.match(r"(invalid )?configs/\S+\.yaml:", line)
            ]
            assert done.returncode == 2 and len(verdicts) == len(_argv(command, tmp_path)) - 1, done.stderr
            assert "configs/template.yaml: valid" in done.stderr
            ran.append(command)
            continue
        if (
            command == "paw doctor"
        ):  # a machine with little free disk fails its disk check: not the README's fault
            failed = [line for line in done.stdout.splitlines() if line.startswith("❌")]
            assert done.returncode == (1 if failed else 0), done.stdout
            assert all(line.startswith("❌ disk") for line in failed), done.stdout
            ran.append(command)
            continue
        assert done.returncode == 0, f"README: {readme}\nran: {command}\n{done.stderr[-2000:]}"
        ran.append(command)
    experiment = tmp_path / "experiments" / "readme"
    assert json.loads((experiment / "metadata.json").read_text())["status"] == "completed"
    assert (tmp_path / "merged" / "config.json").is_file() and (
        tmp_path / "moved" / "transfer_report.md"
    ).is_file()
    assert len(json.loads((tmp_path / "results.json").read_text())["results"]) == 2
    assert list((experiment / "results" / "eval").iterdir())  # paw eval EXPERIMENT wrote into the experiment
    assert len(ran) == len(COMMANDS) - len(SKIPPED)
