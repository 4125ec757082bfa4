"""The label-position loss equals the model's own full-logits loss, with the same gradients, on every family
(Gemma-2's soft-capping included) and with an adapter on lm_head; prompt-learning falls back to TRL's path."""

import pytest
import torch

from paw.train.label_loss import label_positions, label_positions_loss


def _batch(vocab: int):
    g = torch.Generator().manual_seed(0)
    input_ids = torch.randint(3, vocab, (3, 12), generator=g)
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 9:] = 0  # right padding, rows of different lengths
    attention_mask[2, 6:] = 0
    labels = input_ids.clone()
    labels[attention_mask == 0] = -100
    labels[0, :7] = labels[1, :4] = labels[2, :3] = -100  # prompts of different lengths
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def test_positions_are_those_before_any_label():
    labels = torch.tensor([[-100, -100, 5, 6], [-100, 7, -100, -100]])
    assert label_positions(labels).tolist() == [0, 1, 2]


@pytest.mark.parametrize("family", ["qwen2", "llama", "gemma2", "phi3"])
@pytest.mark.parametrize("targets", ["all-linear", ["q_proj", "lm_head"]], ids=["all-linear", "with-lm_head"])
def test_loss_and_gradients_equal_the_full_logits_loss(family, targets):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from paw.models.tiny import tiny_model_dir

    if family == "phi3" and targets != "all-linear":
        targets = ["qkv_proj", "lm_head"]
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir(f"paw-tiny/{family}"), dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=targets, init_lora_weights=False))
    batch = _batch(base.config.vocab_size)

    reference = model(**batch).loss  # the model's own loss over all positions' logits
    reference.backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    ours = label_positions_loss(model, batch)
    ours.loss.backward()
    assert ours.label_tokens == int((batch["labels"][:, 1:] != -100).sum())
    torch.testing.assert_close(ours.loss, reference, rtol=1e-5, atol=1e-6)
    for name, grad in expected.items():
        torch.testing.assert_close(dict(model.named_parameters())[name].grad, grad, rtol=1e-4, atol=1e-6)


def test_num_items_in_batch_sets_the_denominator():
    from transformers import AutoModelForCausalLM

    from paw.models.tiny import tiny_model_dir

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir("paw-tiny/qwen2"))
    batch = _batch(model.config.vocab_size)
    mean = label_positions_loss(model, batch).loss
    n = int((batch["labels"][:, 1:] != -100).sum())
    torch.testing.assert_close(label_positions_loss(model, batch, num_items_in_batch=2 * n).loss, mean / 2)


def _fused(family: str, targets: list[str], head: str, temperature: float = 1.0):
    """Per-token fields and gradients of ``model(..., fused_lm_head=True)`` with TRL's head or paw's."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    from trl.trainer.utils import add_fused_lm_head

    from paw.models.tiny import tiny_model_dir
    from paw.train.label_head import add_label_head

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir(f"paw-tiny/{family}"), dtype=torch.float32)
    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, target_modules=targets, init_lora_weights=False))
    batch = _batch(base.config.vocab_size)
    if head == "own":  # the model's own forward: full logits at every position
        log_p = torch.log_softmax(model(**batch).logits[:, :-1].float(), dim=-1)
        labels = batch["labels"][:, 1:]
        picked = log_p.gather(2, labels.clamp(min=0)[..., None]).squeeze(-1) * (labels != -100)
        out = type("Out", (), {"log_probs": picked})
    else:
        fields = ("log_probs", "entropy", "mean_logits", "is_top1")
        add_fused_lm_head(model.get_base_model(), temperature=temperature, outputs=fields)
        if head == "paw":
            add_label_head(model.get_base_model(), temperature)
        out = model(**batch, fused_lm_head=True)
    out.log_probs.sum().backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize(
    ("family", "temperature"), [("qwen2", 1.0), ("gemma2", 1.0), ("phi3", 1.0), ("gemma2", 0.7)]
)
def test_preference_head_equals_trls_fused_head(family, temperature):
    """paw's label-position head (DPO, KTO; GRPO at its sampling temperature, applied after Gemma-2's soft-capping)
    returns TRL's fused head's per-token fields, loss and gradients."""
    targets = ["qkv_proj", "o_proj"] if family == "phi3" else ["q_proj", "v_proj"]
    (theirs, their_grads), (mine, my_grads) = (
        _fused(family, targets, h, temperature) for h in ("trl", "paw")
    )
    for field in ("log_probs", "entropy", "mean_logits"):
        torch.testing.assert_close(getattr(mine, field), getattr(theirs, field), rtol=1e-4, atol=1e-5)
    assert torch.equal(mine.is_top1 & mine.label_mask, theirs.is_top1 & theirs.label_mask)
    torch.testing.assert_close(mine.loss, theirs.loss, rtol=1e-5, atol=1e-6)
    for name, grad in their_grads.items():
        torch.testing.assert_close(my_grads[name], grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["qwen2", "gemma2"])
def test_preference_head_applies_an_adapter_on_lm_head(family):
    """With LoRA on lm_head, paw's head equals the model's own log-probabilities (TRL's fused head reads the
    head's base weight and leaves the adapter out: its lm_head LoRA gets no gradient)."""
    (own, own_grads), (mine, my_grads) = (
        _fused(family, ["q_proj", "lm_head"], head) for head in ("own", "paw")
    )
    torch.testing.assert_close(mine.log_probs, own.log_probs, rtol=1e-4, atol=1e-5)
    for name, grad in own_grads.items():
        torch.testing.assert_close(my_grads[name], grad, rtol=1e-4, atol=1e-5)
