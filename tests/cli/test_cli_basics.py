import json
import subprocess
import sys
import time

import pytest

from tests.conftest import REPO, run_paw, small_config, write_config


def _imports_after(code: str) -> dict:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code + "\nimport sys, json\nprint(json.dumps({m: m in sys.modules "
            "for m in ('torch', 'transformers', 'peft', 'trl')}))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cli_import_is_light():
    assert not any(_imports_after("import paw.cli.main").values())


def test_help_is_fast_and_torch_free():
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "paw", "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and "train" in result.stdout
    assert elapsed < 3.0  # interpreter start included; paw's own import time is checked below
    code = "import time; t=time.perf_counter(); import paw.cli.main; print(time.perf_counter()-t)"
    own = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout)
    assert own < 0.5, own


def test_validate_bad_config_is_torch_free(tmp_path):
    bad = write_config(
        tmp_path / "bad.yaml",
        {"model": {"name_or_path": "x"}, "data": {"train_file": "t.jsonl"}, "peft": {"rnk": 3}},
    )
    code = (
        f"from typer.testing import CliRunner\nfrom paw.cli.main import app\n"
        f"r = CliRunner().invoke(app, ['validate', '{bad}'])\nassert r.exit_code == 2, r.output\n"
        f"assert \"peft.rnk: unknown key (did you mean 'r'?)\" in r.output, r.output"
    )
    assert not any(_imports_after(code).values())


def test_validate_good_config_checks_data_and_model(tmp_path, alpaca_file):
    path = write_config(tmp_path / "ok.yaml", small_config(alpaca_file, tmp_path))
    result = run_paw("validate", str(path))
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stderr and "train examples" in result.stderr
    assert not list(tmp_path.glob("*/metadata.json"))


def test_validate_only_and_dry_run_write_nothing(tmp_path, alpaca_file):
    path = write_config(tmp_path / "ok.yaml", small_config(alpaca_file, tmp_path))
    assert run_paw("train", str(path), "--validate-only", "--name", "v").returncode == 0
    dry = run_paw("train", str(path), "--dry-run", "--name", "d")
    assert dry.returncode == 0, dry.stderr
    assert "trainable params" in dry.stderr and "checkpoints planned" in dry.stderr
    assert "[" not in dry.stderr and "{" not in dry.stderr and "None" not in dry.stderr  # no Python reprs
    assert not (tmp_path / "v").exists() and not (tmp_path / "d").exists()


def test_plan_values_read_as_text():
    from paw.utils.plan import plan_text

    assert plan_text("trainable_params", 65536) == "65,536"
    assert plan_text("schedule", [{"steps": 75, "lr": 1e-4}, {"steps": 50, "lr": 1e-5}]) == (
        "75 steps at lr 0.0001 → 50 steps at lr 1e-05"
    )
    assert plan_text("max_steps", None) == "by epochs" and plan_text("other", None) == "—"
    assert plan_text("targets", ["q_proj", "v_proj"]) == "q_proj, v_proj"


def test_doctor_writes_report(tmp_path):
    start = time.perf_counter()
    result = run_paw("doctor", "--output", str(tmp_path / "validation_report.json"))
    assert time.perf_counter() - start < 5
    report = json.loads((tmp_path / "validation_report.json").read_text())
    names = {c["name"] for c in report["checks"]}
    assert {"python", "torch", "transformers", "cuda", "disk", "memory"} <= names
    assert result.returncode == (0 if report["ok"] else 1)
    assert "✅" in result.stdout


def test_synth_writes_alpaca_rows(tmp_path):
    out = tmp_path / "s.jsonl"
    assert run_paw("synth", str(out), "--rows", "12").returncode == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 12 and set(rows[0]) == {"instruction", "input", "output"}


def test_shipped_template_validates_offline(tmp_path, alpaca_file):
    result = run_paw("validate", str(REPO / "configs" / "template.yaml"), "--schema-only")
    assert result.returncode == 0, result.stderr


def test_validate_recognises_pipeline_configs(tmp_path):
    result = run_paw("validate", str(REPO / "configs" / "pipeline" / "quick_test.yaml"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "valid pipeline config" in result.stderr and "paw-tiny/qwen2-upgrade" in result.stderr
    real = run_paw(
        "validate", str(REPO / "configs" / "pipeline" / "llama3-8b_to_qwen2.5-7b.yaml"), cwd=tmp_path
    )
    assert real.returncode == 2 and "commonsense_170k.json: data file not found" in real.stderr


def test_exp_list_on_a_missing_root_is_a_clear_error(tmp_path):
    result = run_paw("exp", "list", "--root", str(tmp_path / "nowhere"))
    assert (
        result.returncode == 2 and "no such directory" in result.stderr and "Traceback" not in result.stderr
    )


def test_download_targets_and_offline_error(tmp_path):
    from paw.models.download import download_target

    assert download_target("qwen2.5-0.5b", tmp_path) == ("Qwen/Qwen2.5-0.5B", tmp_path / "qwen2.5-0.5b")
    assert download_target("org/some-model", tmp_path) == ("org/some-model", tmp_path / "some-model")
    result = run_paw(
        "download", "qwen2.5-0.5b", "--models-dir", str(tmp_path / "models")
    )  # tests run offline
    assert result.returncode == 2 and "could not download Qwen/Qwen2.5-0.5B" in result.stderr
    assert "paths.models_dir" in result.stderr and "Traceback" not in result.stderr
    tiny = run_paw("download", "paw-tiny/qwen2")
    assert tiny.returncode == 2 and "nothing to download" in tiny.stderr


def test_version_works_alone():
    done = run_paw("--version")
    assert done.returncode == 0 and done.stdout.strip().startswith("paw ")


def test_model_names_are_never_cut_on_a_narrow_terminal():
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "paw", "models"],
        env={**os.environ, "COLUMNS": "50"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for name in (
        "paw-shape/qwen2.5-0.5b[@<layers>]",
        "paw-tiny/<family>-<upgrade|deep|rotated>",
        "paw-tiny/gemma2",
    ):
        assert name in done.stdout


def test_default_logging_is_about_thirty_lines_a_run():
    from paw.train.recipe import default_logging_steps

    assert [default_logging_steps(n) for n in (1, 30, 31, 125, 3000, None)] == [1, 1, 2, 5, 100, 1]


def test_infer_names_a_generation_that_stopped_at_the_first_token(monkeypatch, capsys):
    import paw.infer.api
    from paw.cli.infer_cmd import infer

    answer = {"results": [{"prompt": "p", "output": ""}], "template": "chat", "new_tokens_per_s": 0.0}
    monkeypatch.setattr(paw.infer.api, "infer", lambda *a, **k: answer)
    infer("paw-tiny/qwen2", None, "hi", None, None, 8, 0.0, 1.0, 0, 1, "auto", "auto")
    assert "1 of 1 generation(s) stopped at the first token" in capsys.readouterr().err


def test_errors_name_the_commands_own_argument(tmp_path):
    done = run_paw("eval", "nosuch", "--tasks", "arc_easy", cwd=tmp_path)
    assert done.returncode == 2
    assert "paw eval EXPERIMENT: no experiment" in done.stderr and "--resume" not in done.stderr


def test_a_finished_command_tears_its_process_group_down(tmp_path, monkeypatch):
    """Under torchrun a command that succeeded destroys the process group before exiting (left to static
    destruction its threads can abort the rank); a failed one leaves it (its peers may still be in a collective)."""
    import torch.distributed as dist

    import paw.cli.main as cli

    monkeypatch.setattr(cli, "app", lambda: sys.exit(0))
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with pytest.raises(SystemExit):
            cli.run()
        assert not dist.is_initialized()
        monkeypatch.setattr(cli, "app", lambda: sys.exit(2))
        dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store2'}", rank=0, world_size=1)
        with pytest.raises(SystemExit):
            cli.run()
        assert dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
