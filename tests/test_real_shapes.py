"""Smoke runs on depth-cut stand-ins with each real tokenizer: train → eval → transfer → merge → infer, and
generation that stops at each real chat template's end-of-turn token (not only at the tokenizer's EOS)."""

import json

import pytest
import torch

from paw import api
from paw.data.synthetic import generate_alpaca, write_jsonl
from paw.data.synthetic_mc import generate_mc
from paw.models.generate import Sampling
from paw.models.resolve import resolve_model
from paw.transfer.api import TransferOptions

pytestmark = pytest.mark.slow
# One stand-in per real tokenizer: Qwen2 BPE, Llama-3 BPE (+BOS), Phi-3 SentencePiece, Llama-2 SentencePiece.
STAND_INS = [
    "paw-shape/qwen2.5-0.5b@1",
    "paw-shape/llama-3.2-1b@1",
    "paw-shape/phi-3.5-mini@1",
    "paw-shape/gemma-2-2b@1",
]


@pytest.mark.parametrize("model", STAND_INS)
def test_train_eval_transfer_merge_infer_on_a_stand_in(real_tokenizers, model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    train_file = write_jsonl(generate_alpaca(16, seed=0), tmp_path / "train.jsonl")
    config = {
        "model": {"name_or_path": model, "dtype": "fp32"},
        "peft": {"r": 4, "alpha": 8, "target_modules": "all-linear"},
        "data": {"train_file": str(train_file), "max_length": 48, "prompt_template": "chat"},
        "training": {"max_steps": 2, "learning_rate": 1e-2, "per_device_train_batch_size": 2},
        "experiment": {"root": str(tmp_path / "experiments")},
    }
    run = api.train(config, name="smoke")
    adapter = run.experiment.final_model
    # the base as the user named it, not the cache dir it was built into: the adapter means the same elsewhere
    assert json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"] == model

    arc = write_jsonl(generate_mc("arc_easy", 6, seed=0), tmp_path / "arc.jsonl")
    scores = api.evaluate(
        "arc_easy", adapter=adapter, data_files={"arc_easy": str(arc)}, output=tmp_path / "eval"
    )
    assert scores["tasks"]["arc_easy"]["n"] == 6

    report = api.transfer(adapter, model, tmp_path / "moved", options=TransferOptions(method="direct"))
    assert report["transferred"] == report["units"] == 7  # the same base: every unit passes and is copied

    # tests/models/test_merge_and_infer.py checks merged = base + adapter; here: it loads, tokenizer intact
    api.merge(adapter, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert not any(".lora_" in name for name, _ in merged.named_parameters())
    text = "Question: Which gas do plants take in?\nAnswer:"
    assert AutoTokenizer.from_pretrained(tmp_path / "merged")(text) == AutoTokenizer.from_pretrained(
        resolve_model(model).location
    )(text)

    [text] = api.infer(["Name a fruit."], adapter=adapter, sampling=Sampling(max_new_tokens=3))
    assert isinstance(text, str)


def steer(model_dir, out, answer: int, then: int, end_of_turn: int) -> None:
    """Rewrite a stand-in so greedy decoding says ``answer``, then ``end_of_turn``, and after that ``then`` forever.

    Every layer's output projections are zeroed, so the residual stream at a position is its token's embedding
    and the next token depends on the current one only. Embeddings are zero but for column 0, which is 1 for
    every token, and three more columns that make ``answer`` win after any ordinary token, the
    end-of-turn token win after ``answer``, and ``then`` win after the end-of-turn token. A generation that stops
    at end-of-turn returns ``answer`` alone; one that runs past it returns ``answer`` followed by ``then``s.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                param.zero_()
        emb = model.get_input_embeddings().weight
        emb.zero_()
        emb[:, 0] = 1.0
        emb[answer, :2] = torch.tensor([1.5, 10.0])
        emb[end_of_turn, :3] = torch.tensor([1.2, 20.0, 1.0])
        emb[then, :3] = torch.tensor([1.0, 0.0, 1000.0])
        if not model.config.tie_word_embeddings:
            model.get_output_embeddings().weight.copy_(emb)
        norm = model.model.norm.weight  # scale logits down so Gemma-2's final soft-capping does not saturate
        norm.fill_(0.01 - 1.0 if model.config.model_type == "gemma2" else 0.01)
    model.to(torch.bfloat16).save_pretrained(out)  # every value set above is exact enough in bf16
    AutoTokenizer.from_pretrained(model_dir).save_pretrained(out)


@pytest.mark.parametrize("model", STAND_INS)
def test_infer_stops_at_the_real_chat_templates_end_of_turn_token(real_tokenizers, model, tmp_path):
    from transformers import AutoTokenizer

    from paw.models.chat import end_of_turn_token
    from paw.models.generate import generate
    from paw.models.loaded import load_for_eval

    location = resolve_model(model).location
    tokenizer = AutoTokenizer.from_pretrained(location)
    end = end_of_turn_token(tokenizer)
    assert end is not None and end != tokenizer.eos_token  # every real template ends turns with its own token
    yes, no = (tokenizer.encode(word, add_special_tokens=False)[-1] for word in (" yes", " no"))
    steer(location, tmp_path / "steered", yes, no, tokenizer.convert_tokens_to_ids(end))

    [text] = api.infer(
        ["Is it raining?"],
        model=str(tmp_path / "steered"),
        template="chat",
        sampling=Sampling(max_new_tokens=6),
    )
    assert text.strip() == "yes"
    loaded = load_for_eval(str(tmp_path / "steered"), None, dtype="fp32")
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Is it raining?"}], tokenize=False, add_generation_prompt=True
    )
    [runaway] = generate(
        loaded.model,
        loaded.tokenizer,
        [prompt],
        stop_tokens=[tokenizer.eos_token],
        sampling=Sampling(max_new_tokens=6),
    )
    assert runaway.split()[:2] == ["yes", "no"]  # stopping on EOS alone runs past the turn's end
