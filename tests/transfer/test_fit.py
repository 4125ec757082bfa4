"""align-fit: the target's down-projection LoRAs solved by least squares to the source adapter's mapped effect."""

import json

import pytest
import torch

from paw.errors import PawError
from paw.models.tiny_variants import rotate
from paw.transfer.api import TransferOptions, transfer
from tests.conftest import run_paw
from tests.transfer.conftest import logits


@pytest.fixture(scope="module")
def down_only(tmp_path_factory, tiny_qwen2):
    """A LoRA on paw-tiny/qwen2's down projections only, with non-trivial factors (what align-fit writes)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_qwen2)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["down_proj"], init_lora_weights=False)
    out = tmp_path_factory.mktemp("down") / "adapter"
    get_peft_model(model, config).save_pretrained(out)
    return out


def test_a_down_projection_adapter_comes_back_on_a_rotated_copy(tmp_path, down_only, tiny_qwen2):
    """The target is the source with its residual basis rotated: the wanted change is the rotated source change,
    the target's MLP activations are the source's, so the fit recovers the adapter up to the ridge's bias; the
    adapter it writes loads with plain peft and the report holds each layer's held-out fit."""
    target = rotate(tiny_qwen2, tmp_path / "target")
    report = transfer(down_only, str(target), tmp_path / "fit", options=TransferOptions(method="align-fit"))
    assert report["transferred"] == report["units"] == 2
    assert all(r["fit_r2"] > 0.95 for r in report["modules"]) and report["fit_r2_mean"] > 0.95
    effect = (logits(tiny_qwen2, down_only) - logits(tiny_qwen2)).abs().max()
    error = (logits(target, tmp_path / "fit") - logits(tiny_qwen2, down_only)).abs().max()
    assert effect > 0.1 and error < 0.05 * effect
    config = json.loads((tmp_path / "fit" / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == [
        "model.layers.0.mlp.down_proj",
        "model.layers.1.mlp.down_proj",
    ]
    assert "held-out fit R²" in (tmp_path / "fit" / "transfer_report.md").read_text()


def _text_logits(model_dir, adapter, text):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model(**AutoTokenizer.from_pretrained(model_dir)(text, return_tensors="pt")).logits


def test_an_adapter_on_every_module_is_fitted_into_down_projections(
    tmp_path, trained, tiny_qwen2, alpaca_file
):
    """The source adapter touches q/k/v/o/gate/up/down; the fit carries its effect on the calibration text
    (the task's first rows) through the down projections alone: on rows it did not read, most of the change the
    adapter makes to the logits is made (the miss is ~0.55 of the change in norm when written)."""
    from paw.transfer.methods.align_act import task_texts

    target = rotate(tiny_qwen2, tmp_path / "target")
    options = TransferOptions(method="align-fit", calibration_data=str(alpaca_file))
    report = transfer(trained, str(target), tmp_path / "fit", options=options)
    assert report["calibration_rows"] == 256 and report["transferred"] == 2
    for text in task_texts(str(alpaca_file), 300)[-3:]:
        source = _text_logits(tiny_qwen2, None, text)
        change = _text_logits(tiny_qwen2, trained, text) - source
        miss = _text_logits(target, tmp_path / "fit", text) - source - change
        assert miss.norm() < 0.7 * change.norm()


def test_the_gate_compares_the_held_out_fit_with_the_threshold(tmp_path, down_only, tiny_qwen2):
    """--similarity-threshold is the held-out share of the change a layer's fit must reproduce; a layer below it
    is skipped with its figure, and when none passes no adapter is written (exit 2, one line)."""
    target = rotate(tiny_qwen2, tmp_path / "target")
    done = run_paw(
        *(
            "transfer",
            "--adapter",
            str(down_only),
            "--target",
            str(target),
            "--output",
            str(tmp_path / "none"),
        ),
        *("--method", "align-fit", "--similarity-threshold", "1.0"),
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "no adapter was written" in done.stderr and "held-out change" in done.stderr
    assert "held-out fit R² a layer must reach" in done.stderr and "φ" not in done.stderr
    assert not (tmp_path / "none" / "adapter_model.safetensors").exists()


def test_a_subspace_rank_is_refused_before_anything_is_read(tmp_path, down_only, tiny_qwen2):
    """align-fit has no subspaces: --k is refused (one line, exit 2), nothing written."""
    options = TransferOptions(method="align-fit", k=8)
    with pytest.raises(PawError, match=r"--k sets the rank .*align-fit has none"):
        transfer(down_only, str(tiny_qwen2), tmp_path / "out", options=options)
    assert not (tmp_path / "out").exists()


def test_a_change_after_a_post_mlp_norm_is_taken_back_through_it():
    """Gemma-2 normalises what its MLP writes before adding it to the residual stream: the change to the MLP's
    output that the fit asks for makes the norm's output point where the wanted change does (an RMS norm fixes
    the length, so the direction is what can be matched)."""
    from transformers.models.gemma2.modeling_gemma2 import Gemma2RMSNorm

    from paw.transfer.fit import _through_norm

    torch.manual_seed(0)
    norm = Gemma2RMSNorm(16)
    with torch.no_grad():
        norm.weight.normal_(0, 0.5)
    written, missing = torch.randn(32, 16), torch.randn(32, 16)
    moved = norm(written + _through_norm(norm, written, missing))
    cosine = torch.nn.functional.cosine_similarity(moved, norm(written) + missing, dim=-1)
    assert cosine.min() > 0.999


@pytest.mark.parametrize("family", ["gemma2", "phi3"])
def test_the_layer_walk_reads_what_the_forward_pass_reads(family, paw_cache):
    """align-fit reads each target layer by running it alone on the states from the layer below, with the masks
    and position embeddings the model passed it: after a change to an earlier layer it reads what a forward pass
    up to that layer reads (Gemma-2: a text longer than its sliding window, whose layers get different masks)."""
    from paw.models.tiny import tiny_model_dir
    from paw.transfer.fit import _Walk
    from paw.transfer.methods.align_act import capture, encode, load_model

    model, tokenizer = load_model(tiny_model_dir(f"paw-tiny/{family}"))
    texts = ["the word and the other word " * 20, "A short one."]
    positions = [list(range(encode(tokenizer, text).shape[1])) for text in texts]
    assert max(map(len, positions)) > model.config.sliding_window if family == "gemma2" else True
    walk = _Walk(model, tokenizer, texts, positions, last=1)
    full = capture(model, tokenizer, texts, positions, keys=("out",))["out"]
    assert all(torch.allclose(walk.base[i], full[i], atol=1e-6) for i in (0, 1))
    torch.manual_seed(0)
    with torch.no_grad():  # what a fit at layer 0 does (not a scaling: Gemma-2's post-MLP norm would undo it)
        weight = model.model.layers[0].mlp.down_proj.weight
        weight.add_(torch.randn_like(weight) * weight.std())
    read = walk.read(1, ("neurons", "out"))
    full = capture(model, tokenizer, texts, positions, upto=1, keys=("neurons", "out"))
    assert not torch.allclose(read["out"], walk.base[1], atol=1e-3)  # the change reached layer 1
    assert torch.allclose(read["out"], full["out"][1], atol=1e-6)
    assert torch.allclose(read["neurons"], full["neurons"][1], atol=1e-6)
