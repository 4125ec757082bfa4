"""QLoRA on a real GPU (marked ``gpu``: never in CI; run with ``pytest -m gpu`` where CUDA and bitsandbytes exist)."""

import pytest

from paw.config.loader import validate_dict
from paw.train.recipe import run_training
from tests.conftest import small_config

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("bits", ["4bit", "8bit"])
def test_qlora_trains_and_saves_a_plain_adapter(tmp_path, alpaca_file, bits):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    cfg = small_config(alpaca_file, tmp_path, max_steps=5)
    cfg["model"]["quantization"] = bits
    result = run_training(validate_dict(cfg, "t.yaml"), name=bits)
    assert result.report["steps"][-1]["step"] == 5
    from paw.models.resolve import resolve_model

    model = AutoModelForCausalLM.from_pretrained(resolve_model("paw-tiny/qwen2").location)
    PeftModel.from_pretrained(model, str(result.experiment.final_model))
