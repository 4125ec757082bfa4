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


def _row(length, reads):
    return loglik._Row(
        list(range(length)),
        list(range(length)),
        list(range(-1, length - 1)),
        [(0, list(range(reads)), [1] * reads)],
    )


def test_batches_are_cut_by_rows_by_logits_budget_and_by_free_memory(monkeypatch):
    from paw.eval.memory import MemoryModel

    memory = MemoryModel(hidden=896, intermediate=4864, heads=14, vocab=151936, value_bytes=4)
    rows = [_row(200, 50) for _ in range(10)]
    assert memory.logits(4 * 50) < loglik.LOGITS_BUDGET  # four rows' logits fit the default budget
    assert [len(b) for b in loglik.plan_batches(rows, 4, memory, 0)] == [4, 4, 2]
    monkeypatch.setattr(loglik, "LOGITS_BUDGET", memory.logits(2 * 50))  # two rows' logits a batch
    assert [len(b) for b in loglik.plan_batches(rows, 4, memory, 0)] == [2, 2, 2, 2, 2]
    # auto: as many rows as the memory model fits in what is free
    one = memory.batch(1, 200, 50)
    assert [len(b) for b in loglik.plan_batches(rows, None, memory, int(3.5 * one))] == [3, 3, 3, 1]
    assert [len(b) for b in loglik.plan_batches(rows, None, memory, 0)] == [1] * 10  # never an empty batch


def test_scores_do_not_depend_on_how_rows_are_batched(paw_cache, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.models.tiny import tiny_model_dir

    path = tiny_model_dir("paw-tiny/qwen2")
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    fixed, _ = loglik.loglikelihoods(model, tokenizer, REQUESTS, GROUPS, batch_size=16)
    auto, _ = loglik.loglikelihoods(model, tokenizer, REQUESTS, GROUPS, batch_size=None)
    monkeypatch.setattr(loglik, "LOGITS_BUDGET", 1)  # one row per batch
    single, _ = loglik.loglikelihoods(model, tokenizer, REQUESTS, GROUPS, batch_size=16)
    for other in (auto, single):
        assert [s.loglik for s in other] == pytest.approx([s.loglik for s in fixed], abs=1e-4)
        assert [s.is_greedy for s in other] == [s.is_greedy for s in fixed]


def test_rows_run_each_distinct_token_path_once():
    pairs = [([1, 2, 3], [4]), ([1, 2, 3], [5, 6]), ([1, 2, 7], [8]), ([9], [1, 2]), ([1, 2, 3], [4])]
    groups = [[0, 1], [2], [3], [4]]  # request 4 is a twin of request 0 in another document
    rows = loglik.build_rows(pairs, groups, max_len=100)
    assert len(rows) == 1
    row = rows[0]
    inputs = loglik._inputs(pairs, 100)  # lm-eval's (context + continuation)[:-1]
    # nodes 1 2 3 5 | 7 | 9 1: request 0's input is a prefix of request 1's, request 4's equals it
    assert len(row.tokens) == loglik._trie_size(inputs) == 7
    assert all(parent < i for i, parent in enumerate(row.parents))
    for request, where, cont in row.reads:  # each read position's path from the root is the request's input
        assert cont == pairs[request][1]
        node, path = where[-1], []
        while node >= 0:
            path.append(row.tokens[node])
            assert row.positions[node] == len(inputs[request]) - len(path)
            node = row.parents[node]
        assert path[::-1] == inputs[request]
    twin = {request: where for request, where, _ in row.reads}
    assert twin[0] == twin[4]
    # rows fill to the largest document's trie or ROW_MIN; a request longer than that runs alone, truncated
    long = [([5] * 300, [1])]
    rows = loglik.build_rows(long + pairs, [[0], *[[i + 1 for i in g] for g in groups]], max_len=200)
    assert sorted(len(r.tokens) for r in rows) == [7, 200]
    plain = loglik.build_rows(pairs, groups, max_len=100, share=False)
    assert [len(r.tokens) for r in plain] == [len(i) for i in inputs]


def test_shared_rows_score_as_plain_rows(paw_cache, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from paw.models.tiny import tiny_model_dir

    path = tiny_model_dir("paw-tiny/gemma2")  # soft-capping and sliding-window layers under the tree mask
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    shapes = []
    model.register_forward_pre_hook(lambda _m, _a, kw: shapes.append(kw["input_ids"].shape), with_kwargs=True)
    shared, n_shared = loglik.loglikelihoods(model, tokenizer, REQUESTS, GROUPS, batch_size=16)
    assert shapes.pop()[0] == 1  # every document in one row
    build = loglik.build_rows
    monkeypatch.setattr(loglik, "build_rows", lambda *a, **k: build(*a, **{**k, "share": False}))
    plain, n_plain = loglik.loglikelihoods(model, tokenizer, REQUESTS, GROUPS, batch_size=16)
    assert shapes.pop()[0] == len(REQUESTS) and n_shared < n_plain
    assert [s.loglik for s in shared] == pytest.approx([s.loglik for s in plain], abs=1e-4)
    assert [s.is_greedy for s in shared] == [s.is_greedy for s in plain]
