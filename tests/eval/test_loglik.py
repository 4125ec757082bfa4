"""The vocabulary projection runs only at read positions (a boolean ``logits_to_keep`` per row); scores equal
those from the model's full logits for every family paw supports, with an adapter on the head too."""

import pytest
import torch

from paw.eval import loglik

REQUESTS = [
    ("Question: Which of these is a kind of fruit?\nAnswer:", f" {w}") for w in ("apple", "car", "a red plum")
] + [("The sky is", " blue"), ("The sky is", " green and wide"), ("", "Hello there")]
GROUPS = [[0, 1, 2], [3, 4], [5]]


def _scores(model, tokenizer, monkeypatch, keep):
    monkeypatch.setattr(loglik, "keeps_logits", lambda m: keep)
    scores, _ = loglik.loglikelihoods(model, tokenizer, REQUESTS, GROUPS, batch_size=4)
    return [(s.loglik, s.is_greedy) for s in scores]


@pytest.mark.parametrize("family", ["qwen2", "llama", "gemma2", "phi3"])
def test_head_at_read_positions_equals_full_logits(family, paw_cache, monkeypatch):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.models.tiny import tiny_model_dir

    path = tiny_model_dir(f"paw-tiny/{family}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
    assert loglik.keeps_logits(model) == "rows"
    if family == "gemma2":
        assert model.config.final_logit_softcapping  # the soft-capping after the head is exercised
    torch.manual_seed(0)
    config = LoraConfig(r=4, target_modules=["q_proj", "lm_head"], init_lora_weights=False)
    results = []
    for subject in (model, "adapted"):
        if subject == "adapted":  # a LoRA on the head itself: it must apply at the reads
            subject = get_peft_model(model, config).eval()
        full = _scores(subject, tokenizer, monkeypatch, None)
        for keep in ("rows", "columns"):
            fewer = _scores(subject, tokenizer, monkeypatch, keep)
            assert [g for _, g in fewer] == [g for _, g in full]
            assert [s for s, _ in fewer] == pytest.approx([s for s, _ in full], abs=1e-4)
        results.append(full)
    assert results[0] != results[1]
