"""What the transfer tests share: a LoRA trained on paw-tiny/qwen2, and a model's logits on fixed ids."""

import pytest
import torch

from paw.config.loader import load_config
from tests.conftest import small_config, write_config

IDS = torch.tensor([[5, 6, 7, 8, 9]])


@pytest.fixture(scope="session")
def trained(tmp_path_factory, alpaca_file):
    """A small LoRA trained on paw-tiny/qwen2 (all linear layers, non-trivial B)."""
    from paw.train.recipe import run_training

    root = tmp_path_factory.mktemp("src")
    cfg = small_config(alpaca_file, root, max_steps=4, learning_rate=1e-2)
    result = run_training(load_config(write_config(root / "c.yaml", cfg)), name="src")
    return result.experiment.final_model


def logits(model_dir, adapter=None):
    """The logits of ``model_dir`` (with ``adapter`` when given) on ``IDS``."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    if adapter is not None:
        model = PeftModel.from_pretrained(model, str(adapter))
    with torch.no_grad():
        return model(IDS).logits
