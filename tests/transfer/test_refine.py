"""The refine stage of paw transfer: beside its control, the guard, built-in data, the widened start, and labels
from the source adapter's answers (``--refine-labels source``)."""

import json
import shutil

import torch

from paw.transfer.api import TransferOptions, transfer
from tests.conftest import run_paw
from tests.transfer.conftest import logits


def test_refine_runs_the_transferred_init_beside_its_control(tmp_path, trained, alpaca_file):
    result = run_paw(
        "transfer",
        "--adapter",
        str(trained),
        "--target",
        "paw-tiny/qwen2",
        "--output",
        str(tmp_path / "out"),
        "--refine-data",
        str(alpaca_file),
        "--refine-steps",
        "5",
        "--refine-examples",
        "40",
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "out" / "transfer_report.json").read_text())
    refine = report["refine"]
    assert refine["examples"] == 40 and refine["steps"] == 5
    for run in ("transferred_init", "standard_init"):
        assert refine[run]["val_loss"] is not None
        meta = json.loads((tmp_path / "out" / "refine" / run / "metadata.json").read_text())
        assert meta["status"] == "completed"
    # the guard measured every scale on the training rows and kept the adapter (it lowers the loss)
    losses = refine["start"]["train_loss_by_scale"]
    assert len(losses) == 5 and refine["start"]["scale"] > 0
    assert losses[str(refine["start"]["scale"])] < losses["0.0"]
    # the refined run really started from the transferred weights: lower loss than the control at equal budget
    assert refine["transferred_init"]["val_loss"] < refine["standard_init"]["val_loss"]
    assert refine["kept"] == "transferred_init"  # the run to use: the lower validation loss
    text = (tmp_path / "out" / "transfer_report.md").read_text()
    assert (
        "Refine (40 examples, 5 steps" in text and "Use the refined run (the lower validation loss)" in text
    )
    assert f"use: {refine['transferred_init']['adapter']} (the refined run" in result.stdout


def test_refine_guard_drops_a_moved_adapter_that_hurts(tmp_path, trained, tiny_qwen2, alpaca_file):
    """A moved adapter that raises the refine data's loss at every scale (here: noise in place of B) is dropped:
    the refined run is its control, so a refine never starts worse than training from the standard init."""
    from safetensors.torch import load_file, save_file

    from paw.transfer.refine import RefineOptions, refine

    noisy = tmp_path / "noisy"
    shutil.copytree(trained, noisy)
    weights = load_file(str(noisy / "adapter_model.safetensors"))
    generator = torch.Generator().manual_seed(0)
    for key, value in weights.items():
        if "lora_B" in key:
            weights[key] = torch.randn(value.shape, generator=generator) * 5
    save_file(weights, str(noisy / "adapter_model.safetensors"))
    options = RefineOptions(data_file=str(alpaca_file), examples=40, steps=3)
    done = refine(str(tiny_qwen2), noisy, options, tmp_path / "refine")
    losses = done["start"]["train_loss_by_scale"]
    assert done["start"]["scale"] == 0.0 and min(losses, key=losses.get) == "0.0"
    assert losses["1.0"] > losses["0.0"]
    assert done["transferred_init"] == {**done["standard_init"], "same_as": "standard_init"}
    assert done["kept"] == "standard_init"
    assert not (tmp_path / "refine" / "transferred_init").exists()


def test_the_kept_run_is_the_refined_one_only_where_its_validation_loss_is_lower():
    """A tie keeps the control (the transfer has to earn its place); without validation rows nothing is picked."""
    from paw.transfer.refine import kept_run

    def runs(moved, control):
        return {"transferred_init": {"val_loss": moved}, "standard_init": {"val_loss": control}}

    assert kept_run(runs(0.2, 0.3)) == "transferred_init"
    assert kept_run(runs(0.3, 0.2)) == "standard_init"
    assert kept_run(runs(0.3, 0.3)) == "standard_init"
    assert kept_run(runs(None, None)) is None


def test_refine_reads_a_builtin_dataset(tmp_path, trained, tiny_qwen2):
    """``--refine-data paw-synth/<name>`` (accepted by the CLI's check) is generated and read by the refine too."""
    from paw.transfer.refine import RefineOptions, refine

    options = RefineOptions(data_file="paw-synth/instructions", examples=24, steps=2)
    done = refine(str(tiny_qwen2), trained, options, tmp_path / "refine")
    assert done["standard_init"]["val_loss"] is not None
    config = (tmp_path / "refine" / "standard_init" / "config.yaml").read_text()
    assert "train_file: paw-synth/instructions" in config


def test_refine_init_covers_what_the_control_trains(tmp_path, trained, tiny_qwen2):
    """A transfer that wrote only some modules (here: layer 0's dropped) is widened for the refine to every
    linear module at the control's rank and alpha: transferred weights kept, the rest at the standard init (B = 0,
    so the outputs are the partial adapter's)."""
    from safetensors.torch import load_file, save_file

    from paw.transfer.refine import complete_adapter

    partial = tmp_path / "partial"
    shutil.copytree(trained, partial)
    weights = load_file(str(partial / "adapter_model.safetensors"))
    kept = {k: v for k, v in weights.items() if ".layers.0." not in k}
    assert len(kept) < len(weights)
    save_file(kept, str(partial / "adapter_model.safetensors"))
    spec = json.loads((partial / "adapter_config.json").read_text())
    done, start = complete_adapter(
        str(tiny_qwen2), partial, spec["r"], spec["lora_alpha"], 0, tmp_path / "completed"
    )
    assert start == {"scale": 1.0}  # no guard asked: the moved weights as they are
    completed = load_file(str(done / "adapter_model.safetensors"))
    assert set(completed) == set(weights)  # every module the standard init trains
    for key, value in completed.items():
        if key in kept and "lora_A" in key:  # the same update, re-factored (balanced) at the same rank
            b_key = key.replace("lora_A", "lora_B")
            torch.testing.assert_close(
                completed[b_key] @ value, kept[b_key] @ kept[key], atol=1e-5, rtol=1e-4
            )
        elif "lora_B" in key and key not in kept:
            assert not value.any()
        elif key not in kept:
            assert value.abs().sum() > 0  # A: the standard (random) init
    torch.testing.assert_close(logits(tiny_qwen2, done), logits(tiny_qwen2, partial), atol=1e-4, rtol=1e-4)


def test_refine_init_of_a_fused_target_has_the_controls_rank(tmp_path, trained):
    """A Phi-3 target's fused modules are written at 3r (qkv_proj) and 2r (gate_up_proj); the refine's start keeps
    their top r directions, so it loads into the control's shapes (it crashed with a size mismatch before)."""
    from safetensors.torch import load_file

    from paw.transfer.refine import complete_adapter

    options = TransferOptions(method="project", tau=0.0, chance_multiple=0.0)
    transfer(trained, "paw-tiny/phi3", tmp_path / "phi", options=options)
    spec = json.loads((tmp_path / "phi" / "adapter_config.json").read_text())
    assert set(spec["rank_pattern"].values()) == {2 * spec["r"], 3 * spec["r"]}
    done, _ = complete_adapter("paw-tiny/phi3", tmp_path / "phi", spec["r"], spec["r"], 0, tmp_path / "c")
    ranks = {
        v.shape[0] for k, v in load_file(str(done / "adapter_model.safetensors")).items() if "lora_A" in k
    }
    assert ranks == {spec["r"]} and not json.loads((done / "adapter_config.json").read_text())["rank_pattern"]


def test_refine_on_the_source_adapters_answers(tmp_path, trained, tiny_qwen2, alpaca_file):
    """``--refine-labels source``: the source adapter's greedy answers to the data's prompts (as transformers'
    own ``generate`` gives them) replace the data's answers, and both refine runs train on them."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.data.formats import alpaca_prompt
    from paw.transfer.distill import MAX_NEW_TOKENS

    out = tmp_path / "out"
    args = ["--adapter", str(trained), "--target", "paw-tiny/qwen2", "--output", str(out)]
    args += ["--refine-data", str(alpaca_file), "--refine-labels", "source"]
    result = run_paw("transfer", *args, "--refine-steps", "2", "--refine-examples", "12")
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "transfer_report.json").read_text())
    labels = report["refine"]["labels"]
    assert labels["labels"] == "source" and labels["rows"] + labels["unanswered"] == 12
    rows = [json.loads(line) for line in (out / "refine" / "source_answers.jsonl").read_text().splitlines()]
    assert len(rows) == labels["rows"] > 0

    tokenizer = AutoTokenizer.from_pretrained(tiny_qwen2)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_qwen2), str(trained)).eval()
    expected, agree = [], 0
    for line in alpaca_file.read_text().splitlines()[:12]:
        row = json.loads(line)
        prompt = alpaca_prompt(row["instruction"], row["input"])
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]
        generated = model.generate(
            input_ids=ids, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, pad_token_id=tokenizer.eos_token_id
        )
        answer = tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True).strip()
        if answer:  # a prompt answered with nothing is left out
            expected.append({**row, "output": answer})
            agree += answer == row["output"]
    assert rows == expected and labels["agree_with_data"] == agree
    for run in ("standard_init", "transferred_init"):
        config = (out / "refine" / run / "config.yaml").read_text()
        assert "source_answers.jsonl" in config
    assert "the source adapter's answers" in (out / "transfer_report.md").read_text()


def test_sampled_source_answers_are_seeded_and_spread(tmp_path, trained, alpaca_file):
    """Above temperature 0 each row gets a sampled answer: the same seed gives the same file, and the answers
    are not the greedy ones (on a random tiny model the likeliest answer is rarely sampled every time)."""
    from paw.transfer.distill import source_answers

    def answers(name: str, temperature: float, seed: int = 0) -> list[str]:
        out = tmp_path / f"{name}.jsonl"
        record = source_answers(
            "paw-tiny/qwen2", trained, str(alpaca_file), out, 8, 8, None, temperature, seed
        )
        assert record["temperature"] == temperature
        return [json.loads(line)["output"] for line in out.read_text().splitlines()]

    sampled = answers("a", 1.0)
    assert sampled == answers("b", 1.0)
    assert sampled != answers("c", 1.0, seed=1)
    assert sampled != answers("greedy", 0.0)


def test_refine_reads_renamed_fields_and_keeps_the_runs_data_settings(tmp_path, trained, alpaca_file):
    """A pipeline's ``data.columns``, ``format`` and text settings reach the refine: the source answers the
    renamed rows, writes them in paw's names, and both runs train on them with the pipeline's settings."""
    import yaml

    from paw.transfer.refine import RefineOptions, check_inputs, refine_transferred

    renamed = tmp_path / "renamed.jsonl"
    rows = [json.loads(line) for line in alpaca_file.read_text().splitlines()[:20]]
    renamed.write_text(
        "".join(json.dumps({"q": r["instruction"], "x": r["input"], "a": r["output"]}) + "\n" for r in rows)
    )
    settings = {
        "columns": {"q": "instruction", "x": "input", "a": "output"},
        "format": "alpaca",
        "max_length": 200,
    }
    check_inputs(str(renamed), 20, "source", "data.train_file", settings)
    out = tmp_path / "moved"
    transfer(trained, "paw-tiny/qwen2", out)
    options = RefineOptions(str(renamed), 20, 2, data_settings=settings)
    refined = refine_transferred("paw-tiny/qwen2", trained, out, "paw-tiny/qwen2", options, "source")
    answered = [
        json.loads(line) for line in (out / "refine" / "source_answers.jsonl").read_text().splitlines()
    ]
    assert answered and {"instruction", "input", "output"} <= set(answered[0])
    assert refined["labels"]["rows"] == len(answered)
    for run in ("standard_init", "transferred_init"):
        data = yaml.safe_load((out / "refine" / run / "config.yaml").read_text())["data"]
        assert (data["max_length"], data["format"], data["columns"]) == (200, "alpaca", {})


def test_refine_labels_bad_inputs(tmp_path, trained):
    """An unknown --refine-labels, source labels without data to answer, and rows with no prompt: exit 2, named,
    before anything is written."""
    text_rows = tmp_path / "text.jsonl"
    text_rows.write_text('{"text": "no prompt here"}\n')
    base = ["transfer", "--adapter", str(trained), "--target", "paw-tiny/qwen2"]
    cases = [
        (
            ["--refine-data", str(text_rows), "--refine-labels", "teacher"],
            "--refine-labels 'teacher' is unknown",
        ),
        (["--refine-labels", "source"], "pass --refine-data"),
        (["--refine-data", str(text_rows), "--refine-temperature", "1"], "add --refine-labels source"),
        (["--refine-data", str(text_rows), "--refine-labels", "source"], "a text row has no prompt"),
    ]
    for i, (args, message) in enumerate(cases):
        result = run_paw(*base, "--output", str(tmp_path / f"out{i}"), *args)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
        assert not (tmp_path / f"out{i}").exists()
