"""paw transfer end to end on tiny models: plain-peft loading, exactness of direct and align, the threshold, bad
inputs (the refine stage: test_refine.py)."""

import json
import shutil

import pytest
import torch

from paw.errors import PawError
from paw.models.tiny_variants import grow_deeper, rotate
from paw.transfer.api import TransferOptions, transfer
from paw.transfer.mapping import adapter_units, target_modules
from paw.transfer.weights import WeightStore
from tests.conftest import run_paw
from tests.transfer.conftest import logits


def test_direct_to_the_same_model_reproduces_the_adapter(tmp_path, trained, tiny_qwen2):
    report = transfer(trained, "paw-tiny/qwen2", tmp_path / "out", options=TransferOptions(method="direct"))
    assert report["transferred"] == report["units"] == 14
    torch.testing.assert_close(
        logits(tiny_qwen2, tmp_path / "out"), logits(tiny_qwen2, trained), atol=1e-5, rtol=1e-5
    )
    saved = json.loads((tmp_path / "out" / "transfer_report.json").read_text())
    assert saved["modules"][0]["phi_out"] == pytest.approx(1.0, abs=1e-3)
    assert (tmp_path / "out" / "transfer_report.md").is_file()


def test_project_to_a_fused_phi3_target_loads_with_plain_peft_and_changes_outputs(tmp_path, trained):
    from paw.models.tiny import tiny_model_dir

    phi3 = tiny_model_dir("paw-tiny/phi3")
    options = TransferOptions(method="project", tau=0.0, chance_multiple=0.0)
    report = transfer(trained, "paw-tiny/phi3", tmp_path / "phi", options=options)
    assert report["transferred"] == 14
    config = json.loads((tmp_path / "phi" / "adapter_config.json").read_text())
    assert any(m.endswith("qkv_proj") for m in config["target_modules"])
    assert not torch.allclose(logits(phi3, tmp_path / "phi"), logits(phi3))


def test_fused_split_and_join_are_exact():
    from paw.models.tiny import tiny_model_dir
    from paw.transfer.adapter_io import LoraModule
    from paw.transfer.mapping import Unit

    phi3 = WeightStore(tiny_model_dir("paw-tiny/phi3"), "target")
    sizes = phi3.dims()
    g = torch.Generator().manual_seed(0)
    units = {
        Unit(0, kind): LoraModule(A=torch.randn(4, 64, generator=g), B=torch.randn(rows, 4, generator=g))
        for kind, rows in (("q", sizes["q"]), ("k", sizes["kv"]), ("v", sizes["kv"]))
    }
    fused = target_modules(units, phi3)["model.layers.0.self_attn.qkv_proj"]
    assert fused.rank == 12  # ranks add up: the join is exact
    delta = fused.B @ fused.A
    start = 0
    for kind, rows in (("q", sizes["q"]), ("k", sizes["kv"]), ("v", sizes["kv"])):
        unit = units[Unit(0, kind)]
        torch.testing.assert_close(delta[start : start + rows], unit.B @ unit.A, atol=1e-5, rtol=1e-5)
        start += rows
    split = adapter_units({"model.layers.0.self_attn.qkv_proj": fused}, phi3)
    for unit, (_, module) in split.items():
        torch.testing.assert_close(module.B @ module.A, units[unit].B @ units[unit].A, atol=1e-5, rtol=1e-5)


def test_unrelated_target_is_rejected_by_the_threshold(tmp_path, trained):
    """Nothing passes: the CLI exits 2 naming the top reasons and the report; the output dir holds that report
    only (no adapter files), and a rerun with other options may replace it."""
    from paw.models.tiny import build_tiny_model

    other = build_tiny_model("qwen2", tmp_path / "seed1", seed=1)
    done = run_paw(
        "transfer", "--adapter", str(trained), "--target", str(other), "--output", str(tmp_path / "none")
    )
    assert done.returncode == 2, done.stderr
    assert "no adapter was written" in done.stderr and "× subspace similarity below threshold" in done.stderr
    assert "median φ out/in" in done.stderr and "transfer_report.md" in done.stderr
    assert sorted(p.name for p in (tmp_path / "none").iterdir()) == [
        "transfer_report.json",
        "transfer_report.md",
    ]
    with pytest.raises(PawError, match="no module passed"):  # replaced, not refused as an existing output
        transfer(trained, str(other), tmp_path / "none", options=TransferOptions(chance_multiple=2.0))
    report = json.loads((tmp_path / "none" / "transfer_report.json").read_text())
    assert report["options"]["chance_multiple"] == 2.0
    with pytest.raises(
        PawError, match="no module passed"
    ):  # pairing heads and neurons finds nothing real here
        transfer(trained, str(other), tmp_path / "none", options=TransferOptions(method="align"))


def test_transfer_thresholds_out_of_range_are_refused(tmp_path, trained):
    done = run_paw(
        "transfer", "--adapter", str(trained), "--target", "paw-tiny/qwen2", "--output", str(tmp_path / "o"),
        "--similarity-threshold", "1.5",
    )  # fmt: skip
    said = " ".join(done.stderr.replace("│", " ").split())
    assert (
        done.returncode == 2 and "'--similarity-threshold': Input should be less than or equal to 1" in said
    ), said
    assert not (tmp_path / "o").exists()


def _cli(*args, cwd=None):
    result = run_paw("transfer", *args, cwd=cwd)
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_bad_inputs(tmp_path, trained, tiny_qwen2):
    base = ["--target", "paw-tiny/qwen2"]
    assert "does not exist" in _cli(
        "--adapter", str(tmp_path / "nope"), *base, "--output", str(tmp_path / "o1")
    )
    ia3 = tmp_path / "ia3"
    ia3.mkdir()
    (ia3 / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    assert "LoRA adapters only" in _cli("--adapter", str(ia3), *base, "--output", str(tmp_path / "o2"))
    (tmp_path / "exists").mkdir()
    assert "already exists" in _cli("--adapter", str(trained), *base, "--output", str(tmp_path / "exists"))
    # the wrong source: a wider Qwen2 whose MLP shapes differ from the adapter's
    from transformers import AutoConfig, AutoModelForCausalLM

    wide = tmp_path / "wide"
    shutil.copytree(tiny_qwen2, wide)
    config = AutoConfig.from_pretrained(wide)
    config.intermediate_size = 256
    AutoModelForCausalLM.from_config(config).save_pretrained(wide)
    err = _cli("--adapter", str(trained), "--source", str(wide), *base, "--output", str(tmp_path / "o3"))
    assert "is not the base the adapter was trained on (paw-tiny/qwen2" in err
    unnamed = tmp_path / "unnamed"  # an adapter that names no base: the shapes still tell
    shutil.copytree(trained, unnamed)
    config_file = unnamed / "adapter_config.json"
    config_file.write_text(
        json.dumps({**json.loads(config_file.read_text()), "base_model_name_or_path": None})
    )
    err = _cli("--adapter", str(unnamed), "--source", str(wide), *base, "--output", str(tmp_path / "o3"))
    assert "is not this adapter's base" in err and "(64, 128) in the adapter but (64, 256)" in err
    # an unsupported module (the output head)
    from safetensors.torch import save_file

    head = tmp_path / "head"
    shutil.copytree(trained, head)
    save_file(
        {
            "base_model.model.lm_head.lora_A.weight": torch.zeros(8, 64),
            "base_model.model.lm_head.lora_B.weight": torch.zeros(700, 8),
        },
        str(head / "adapter_model.safetensors"),
    )
    assert "is not supported for transfer" in _cli(
        "--adapter", str(head), *base, "--output", str(tmp_path / "o4")
    )


def test_cka_depth_map_finds_the_layers_of_a_deepened_model(tmp_path, tiny_qwen2):
    from paw.transfer.cka import cka_layer_map

    deep = grow_deeper(tiny_qwen2, tmp_path / "deep")  # layers 0,1 -> 0,2; 1 and 3 are identity copies
    mapping, scores = cka_layer_map(tiny_qwen2, deep)
    assert mapping[0] in (0, 1) and mapping[1] in (2, 3) and mapping[0] < mapping[1]
    assert scores[0][0] > 0.999


def test_align_carries_an_adapter_into_a_rotated_basis(tmp_path, trained, tiny_qwen2):
    rotated = rotate(tiny_qwen2, tmp_path / "rotated")
    torch.testing.assert_close(logits(rotated), logits(tiny_qwen2), atol=1e-4, rtol=1e-4)  # same function
    with pytest.raises(PawError, match="no module passed"):  # raw coordinates: the gate sees unrelated bases
        transfer(trained, str(rotated), tmp_path / "direct", options=TransferOptions(method="direct"))
    report = transfer(trained, str(rotated), tmp_path / "align", options=TransferOptions(method="align"))
    assert report["transferred"] == report["units"] == 14 and report["shared_tokens"] > 500
    torch.testing.assert_close(
        logits(rotated, tmp_path / "align"), logits(tiny_qwen2, trained), atol=1e-3, rtol=1e-3
    )


def _shuffled(model_dir, out, extra=32):
    """The same function with every layer's MLP neurons shuffled and ``extra`` neurons added (random gate/up rows,
    zero down columns) and its attention heads shuffled (key-value heads with their groups of query heads), as an
    independently trained model would order and count them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    generator = torch.Generator().manual_seed(3)
    config = model.config
    config.intermediate_size += extra
    wide = type(model)(config)
    state = model.state_dict()
    hd = config.hidden_size // config.num_attention_heads
    group = config.num_attention_heads // config.num_key_value_heads

    def blocks(order, width):  # row indices that put blocks of `width` rows in `order`
        return torch.cat([torch.arange(b * width, (b + 1) * width) for b in order.tolist()])

    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}.mlp."
        width = state[prefix + "gate_proj.weight"].shape[0]
        order = torch.randperm(width + extra, generator=generator)
        for name in ("gate_proj", "up_proj"):
            rows = torch.cat([state[prefix + name + ".weight"], torch.randn(extra, config.hidden_size) * 0.1])
            state[prefix + name + ".weight"] = rows[order]
        down = torch.cat([state[prefix + "down_proj.weight"], torch.zeros(config.hidden_size, extra)], dim=1)
        state[prefix + "down_proj.weight"] = down[:, order]
        attn = f"model.layers.{layer}.self_attn."
        kv_order = torch.randperm(config.num_key_value_heads, generator=generator)
        q_order = torch.cat(
            [g * group + torch.randperm(group, generator=generator) for g in kv_order.tolist()]
        )
        for name, order in (("q_proj", q_order), ("k_proj", kv_order), ("v_proj", kv_order)):
            index = blocks(order, hd)
            state[attn + name + ".weight"] = state[attn + name + ".weight"][index]
            if attn + name + ".bias" in state:
                state[attn + name + ".bias"] = state[attn + name + ".bias"][index]
        state[attn + "o_proj.weight"] = state[attn + "o_proj.weight"][:, blocks(q_order, hd)]
    wide.load_state_dict(state)
    wide.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def test_align_pairs_neurons_and_heads_that_are_shuffled_or_more_numerous(tmp_path, trained, tiny_qwen2):
    shuffled = _shuffled(tiny_qwen2, tmp_path / "shuffled")
    torch.testing.assert_close(logits(shuffled), logits(tiny_qwen2), atol=1e-4, rtol=1e-4)  # same function
    report = transfer(trained, str(shuffled), tmp_path / "align", options=TransferOptions(method="align"))
    assert (
        report["transferred"] == report["units"] == 14
    )  # the gate sees the paired neurons' and heads' subspaces
    torch.testing.assert_close(
        logits(shuffled, tmp_path / "align"), logits(tiny_qwen2, trained), atol=1e-3, rtol=1e-3
    )


def _more_heads(model_dir, out):
    """The same function with one more key-value head and its group of query heads (random query, key and value
    rows; zero o columns, so they add nothing), as a model with more heads and KV groups counts them."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = model.config
    hd = config.hidden_size // config.num_attention_heads
    group = config.num_attention_heads // config.num_key_value_heads
    config.head_dim = hd
    config.num_key_value_heads += 1
    config.num_attention_heads += group
    more = type(model)(config)
    state = model.state_dict()
    generator = torch.Generator().manual_seed(4)
    for layer in range(config.num_hidden_layers):
        attn = f"model.layers.{layer}.self_attn."
        for name, extra in (("q_proj", group * hd), ("k_proj", hd), ("v_proj", hd)):
            weight = state[attn + f"{name}.weight"]
            new_rows = torch.randn(extra, weight.shape[1], generator=generator) * weight.std()
            state[attn + f"{name}.weight"] = torch.cat([weight, new_rows])
            if attn + f"{name}.bias" in state:
                state[attn + f"{name}.bias"] = torch.cat([state[attn + f"{name}.bias"], torch.zeros(extra)])
        o = state[attn + "o_proj.weight"]
        state[attn + "o_proj.weight"] = torch.cat([o, torch.zeros(o.shape[0], group * hd)], dim=1)
    more.load_state_dict(state)
    more.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def _wider_heads(model_dir, out):
    """The same function with heads twice as wide (``head_dim`` 16 -> 32), as a model of another family sizes them:
    each head's rows sit in half of the new coordinates (each rotary half padded, so RoPE still pairs them, with the
    rotary base squared so the kept coordinates turn at their old frequencies); queries are scaled by √2 to undo
    the wider softmax scale, and o reads only the coordinates the values write."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    config = model.config
    old = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    config.head_dim = 2 * old
    config.rope_parameters = {
        **config.rope_parameters,
        "rope_theta": config.rope_parameters["rope_theta"] ** 2,
    }
    wide = type(model)(config)
    state = model.state_dict()
    half = old // 2
    keep = torch.cat([torch.arange(half), torch.arange(old, old + half)])  # kept coordinates of a wide head

    def widen(rows, heads, scale=1.0):  # (heads·old, …) -> (heads·2·old, …), zeros in the new coordinates
        wide_rows = torch.zeros(heads, 2 * old, *rows.shape[1:])
        wide_rows[:, keep] = rows.reshape(heads, old, *rows.shape[1:]) * scale
        return wide_rows.reshape(heads * 2 * old, *rows.shape[1:])

    for layer in range(config.num_hidden_layers):
        attn = f"model.layers.{layer}.self_attn."
        for name, heads, scale in (
            ("q_proj", config.num_attention_heads, 2**0.5),
            ("k_proj", config.num_key_value_heads, 1.0),
            ("v_proj", config.num_key_value_heads, 1.0),
        ):
            for part in ("weight", "bias"):
                if attn + f"{name}.{part}" in state:
                    state[attn + f"{name}.{part}"] = widen(state[attn + f"{name}.{part}"], heads, scale)
        state[attn + "o_proj.weight"] = widen(state[attn + "o_proj.weight"].T, config.num_attention_heads).T
    wide.load_state_dict(state)
    wide.save_pretrained(out)
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)
    return out


def test_align_carries_heads_into_more_wider_shuffled_heads_and_a_rotated_basis(
    tmp_path, trained, tiny_qwen2
):
    """A known relation with every difference at once: heads shuffled, more numerous (one more key-value group)
    and twice as wide, MLP neurons shuffled and more numerous, the residual basis rotated. align pairs and fits
    every unit and the effect comes back."""
    more = _more_heads(_shuffled(tiny_qwen2, tmp_path / "s"), tmp_path / "m")
    target = rotate(_wider_heads(more, tmp_path / "w"), tmp_path / "target")
    torch.testing.assert_close(logits(target), logits(tiny_qwen2), atol=1e-4, rtol=1e-4)  # same function
    # the gate opened: in a 64-wide model the random extra heads dilute the target's dominant subspaces enough
    # that one unit's φ lands just under 3× chance (0.747 vs 0.75); what is tested here is the map
    options = TransferOptions(method="align", tau=0.0, chance_multiple=0.0)
    report = transfer(trained, str(target), tmp_path / "align", options=options)
    assert report["transferred"] == report["units"] == 14
    torch.testing.assert_close(
        logits(target, tmp_path / "align"), logits(tiny_qwen2, trained), atol=1e-3, rtol=1e-3
    )


def test_align_act_fits_its_maps_on_hidden_states(tmp_path, trained, tiny_qwen2):
    """align-act: per-layer maps least-squares fitted on both models' hidden states at shared token boundaries;
    on a shuffled, more numerous and rotated copy the effect comes back up to the ridge's bias, and an unrelated
    model is still refused by the gate."""
    from paw.models.tiny import build_tiny_model

    target = rotate(_shuffled(tiny_qwen2, tmp_path / "s"), tmp_path / "target")
    report = transfer(trained, str(target), tmp_path / "act", options=TransferOptions(method="align-act"))
    assert report["transferred"] == report["units"] == 14
    effect = (logits(tiny_qwen2, trained) - logits(tiny_qwen2)).abs().max()
    error = (logits(target, tmp_path / "act") - logits(tiny_qwen2, trained)).abs().max()
    assert effect > 0.5 and error < 0.02 * effect
    other = build_tiny_model("qwen2", tmp_path / "seed1", seed=1)
    with pytest.raises(PawError, match="no module passed"):
        transfer(trained, str(other), tmp_path / "none", options=TransferOptions(method="align-act"))


def test_align_act_fits_on_the_task_text_first(tmp_path, trained, tiny_qwen2, alpaca_file):
    """--calibration-data: the task's rows (prompt and answer, as plain text) are read before the corpus, a
    prefix the rows share (the prompt template) counted once; the maps still recover a rotated copy."""
    from paw.transfer.methods.align_act import MAX_POSITIONS, TEXTS

    target = rotate(tiny_qwen2, tmp_path / "target")
    options = TransferOptions(method="align-act", calibration_data=str(alpaca_file))
    report = transfer(trained, str(target), tmp_path / "act", options=options)
    assert report["calibration_rows"] == TEXTS and report["paired_positions"] == MAX_POSITIONS
    effect = (logits(tiny_qwen2, trained) - logits(tiny_qwen2)).abs().max()
    error = (logits(target, tmp_path / "act") - logits(tiny_qwen2, trained)).abs().max()
    assert error < 0.02 * effect
    result = run_paw(
        "transfer",
        "--adapter",
        str(trained),
        "--target",
        str(target),
        "--output",
        str(tmp_path / "cli"),
        "--calibration-data",
        str(alpaca_file),
    )
    assert result.returncode == 2 and "--method align-act and align-fit only" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "cli").exists()
    with pytest.raises(
        PawError, match="align-act and align-fit only"
    ):  # the library refuses it too, before anything is read
        transfer(
            trained, str(target), tmp_path / "api", options=TransferOptions(calibration_data=str(alpaca_file))
        )
    assert not (tmp_path / "api").exists()
    # with --refine-data and no --calibration-data, align-act reads the refine data
    refined = tmp_path / "refined"
    result = run_paw(
        *("transfer", "--adapter", str(trained), "--target", str(target), "--output", str(refined)),
        *("--method", "align-act", "--refine-data", str(alpaca_file), "--refine-steps", "1"),
        *("--refine-examples", "20"),
    )
    assert result.returncode == 0, result.stderr
    report = json.loads((refined / "transfer_report.json").read_text())
    assert report["options"]["calibration_data"] == str(alpaca_file) and report["calibration_rows"] == TEXTS


def test_a_method_is_one_module_and_one_registry_line(tmp_path, trained, monkeypatch):
    """A test-only method (tests/transfer/halved_method.py) registered with one line runs end to end: its prepare
    hook runs once, every unit goes through it, and the adapter it writes loads with plain peft."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from paw.models.resolve import resolve_model
    from paw.transfer.methods import REGISTRY
    from tests.transfer import halved_method

    monkeypatch.setitem(REGISTRY, "halved", "tests.transfer.halved_method")
    report = transfer(
        trained, "paw-tiny/qwen2", tmp_path / "halved", options=TransferOptions(method="halved")
    )
    assert len(halved_method.PREPARED) == 1
    assert report["transferred"] == report["units"] and {m["method"] for m in report["modules"]} == {"halved"}
    assert {m["energy_kept"] for m in report["modules"]} == {0.5}
    base = AutoModelForCausalLM.from_pretrained(resolve_model("paw-tiny/qwen2").location)
    PeftModel.from_pretrained(base, str(tmp_path / "halved"))
