"""Run tasks on a loaded model: load docs (local file or hub), sample, build few-shot prompts, score, aggregate.

With several processes (``accelerate launch -m paw eval ...``), documents are split across ranks and the
per-example results gathered, so rank 0 writes one results file.
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from paw.data.readers import read_hub, read_rows
from paw.errors import PawError
from paw.eval.docs import ChoiceDoc, GenDoc, Task
from paw.eval.memory import AUTO_SHARE
from paw.eval.metrics import aggregate, choice_predictions

FEWSHOT_SEED = 1234  # lm-eval's default fewshot_random_seed
log = logging.getLogger("paw.eval")


@dataclass(frozen=True)
class EvalOptions:
    limit: int | None = None
    sample_ratio: float | None = None
    seed: int = 1234
    num_fewshot: int = 0
    batch_size: int | str = 16
    log_samples: bool = False
    # task -> a file of its training split, where its few-shot examples come from (--fewshot-file)
    fewshot_files: dict[str, str] = field(default_factory=dict)


@dataclass
class TaskResult:
    task: str
    metrics: dict[str, float | None]
    n: int
    seconds: float
    tokens: int
    samples: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            **self.metrics,
            "n": self.n,
            "seconds": round(self.seconds, 3),
            "items_per_s": round(self.n / self.seconds, 2) if self.seconds else None,
            "tokens_per_s": round(self.tokens / self.seconds, 1) if self.seconds else None,
        }


def load_docs(
    task: Task, data_file: str | None, options: EvalOptions
) -> tuple[list[ChoiceDoc | GenDoc], int]:
    """All docs of a task's file (or hub split), then the seeded subset; returns (subset, total)."""
    if data_file:
        records = read_rows(data_file)
        source = data_file
    elif task.hub is not None:
        fix = f"Pass a local copy with --data-file {task.name}=PATH"
        records = read_hub(task.hub.path, task.hub.split, task.hub.name, fix)
        source = f"{task.hub.path}[{task.hub.split}]"
    else:
        raise PawError(
            f"task {task.name} has no public dataset: pass its file with --data-file {task.name}=PATH"
        )
    if not records:
        raise PawError(f"{source}: no rows for task {task.name}")
    docs = [task.doc(r.row, r.where) for r in records]
    indices = list(range(len(docs)))
    n = len(docs)
    if options.sample_ratio is not None:
        n = max(0, round(len(docs) * options.sample_ratio))
    if options.limit is not None:
        n = min(n, options.limit)
    if n < len(docs):
        indices = sorted(random.Random(options.seed).sample(indices, n))
    if not indices:
        raise PawError(f"{source}: no examples left for task {task.name} after sampling (sample_ratio/limit)")
    return [docs[i] for i in indices], len(docs)


def fewshot_pool(task: Task, data_file: str | None, fewshot_file: str | None, k: int) -> list | None:
    """Where a task's few-shot examples come from, by lm-eval's rule: a file of the task's training split when
    given (``--fewshot-file``), else the hub task's training split when the scored docs come from the hub; None
    when there is neither: then they are drawn from the documents being scored (each doc never its own example),
    which lm-eval also does but warns about, as paw does."""
    if k <= 0:
        return None
    if fewshot_file:
        return [task.doc(r.row, r.where) for r in read_rows(fewshot_file)]
    if data_file is None and task.hub is not None and task.hub.fewshot_split:
        fix = f"Pass a local copy of its {task.hub.fewshot_split} split with --fewshot-file {task.name}=PATH"
        records = read_hub(task.hub.path, task.hub.fewshot_split, task.hub.name, fix)
        return [task.doc(r.row, r.where) for r in records]
    log.warning(
        "task %s: the %d-shot examples are drawn from the documents being scored (no training split given: "
        "--fewshot-file %s=PATH); scores are then not comparable with runs that use one",
        task.name,
        k,
        task.name,
    )
    return None


def _draw(rnd: random.Random, pool: list, k: int, exclude: Any = None) -> list:
    """lm-eval's ContextSampler: k docs from the pool, one RNG per task; from the scored split, k+1 are drawn
    and the scored doc removed (resampled without it when that leaves fewer than k)."""
    available = len(pool) - (exclude is not None)
    if available < k:
        raise PawError(f"--num-fewshot {k}: only {available} examples to draw from")
    if exclude is None:
        return rnd.sample(pool, k)
    shots = [d for d in rnd.sample(pool, min(k + 1, len(pool))) if d is not exclude][:k]
    if len(shots) < k:
        shots = rnd.sample([d for d in pool if d is not exclude], k)
    return shots


def _shot_text(doc: ChoiceDoc | GenDoc) -> str:
    if isinstance(doc, GenDoc):
        return doc.prompt + (doc.fewshot_target if doc.fewshot_target is not None else " " + doc.gold)
    if doc.multiple_input:
        return f"{doc.context[doc.gold]} {doc.continuation}"
    return f"{doc.context} {doc.choices[doc.gold]}"


def with_fewshot(docs: list, k: int, pool: list | None = None) -> list:
    """Prefix each doc's context(s) with k solved examples from ``pool`` (None: the docs themselves), joined by
    blank lines (lm-eval's delimiters), drawn in document order from one RNG seeded as lm-eval seeds it."""
    if k <= 0:
        return docs
    rnd, out = random.Random(FEWSHOT_SEED), []
    for doc in docs:
        shots = _draw(rnd, pool, k) if pool is not None else _draw(rnd, docs, k, exclude=doc)
        prefix = "\n\n".join(_shot_text(d) for d in shots) + "\n\n"
        if isinstance(doc, GenDoc):
            out.append(GenDoc(doc.where, prefix + doc.prompt, doc.gold, doc.fewshot_target))
        elif doc.multiple_input:
            out.append(
                ChoiceDoc(
                    doc.where, [prefix + c for c in doc.context], doc.choices, doc.gold, doc.continuation
                )
            )
        else:
            out.append(ChoiceDoc(doc.where, prefix + doc.context, doc.choices, doc.gold))
    return out


def score_choice_docs(
    model, tokenizer, docs: list[ChoiceDoc], batch_size: int | None, share: float = AUTO_SHARE
) -> tuple[list[dict], int]:
    """Score multiple-choice docs; ``batch_size`` None sizes batches to ``share`` of the free memory."""
    from paw.eval.loglik import loglikelihoods

    requests, groups = [], []
    for doc in docs:
        pairs = doc.requests()
        groups.append(list(range(len(requests), len(requests) + len(pairs))))
        requests += pairs
    scores, tokens = loglikelihoods(model, tokenizer, requests, groups, batch_size, share=share)
    samples = []
    for doc, group in zip(docs, groups, strict=True):
        lls = [scores[i].loglik for i in group]
        preds = choice_predictions(lls, doc.choices)
        samples.append(
            {
                "where": doc.where,
                "gold": doc.gold,
                "pred": preds["acc"],
                "loglikelihoods": lls,
                "is_greedy": [scores[i].is_greedy for i in group],
                **{metric: float(pred == doc.gold) for metric, pred in preds.items()},
            }
        )
    return samples, tokens


def _prompts(docs: list[GenDoc], tokenizer, prompt_spec: dict | None) -> list[str]:
    """Instruction tasks are prompted as the adapter was trained (paw_prompt.json): Alpaca prompt or chat template."""
    if not prompt_spec or prompt_spec.get("prompt_template") != "chat":
        return [d.prompt for d in docs]
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": d.user}], tokenize=False, add_generation_prompt=True
        )
        if d.user is not None
        else d.prompt
        for d in docs
    ]


def score_generation_docs(
    model, tokenizer, task: Task, docs: list[GenDoc], batch_size: int, prompt_spec: dict | None = None
) -> tuple[list[dict], int]:
    from paw.eval.loglik import context_length
    from paw.models.generate import generate

    until = task.generation.get("until", [])
    max_new_tokens = task.generation.get("max_new_tokens", 32)
    stop_tokens = (prompt_spec or {}).get("stop_tokens") or None
    prompts = _prompts(docs, tokenizer, prompt_spec)
    outputs = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens,
        batch_size,
        stop_tokens=stop_tokens,
        stop_strings=until,
        # lm-eval keeps a prompt's last (context length - new tokens) tokens
        max_prompt_tokens=max(1, context_length(model, tokenizer) - max_new_tokens),
    )
    samples = []
    for doc, prompt, output in zip(docs, prompts, outputs, strict=True):
        samples.append(
            {
                "where": doc.where,
                "prompt": prompt,
                "gold": doc.gold,
                "output": output,
                **task.score(doc, output),
            }
        )
    tokens = sum(len(tokenizer(d.prompt)["input_ids"]) for d in docs)
    return samples, tokens


def generation_batch_size(batch_size: int | str) -> int:
    """'auto' for generation: 64 prompts on CUDA (32 on CPU); run_task halves it while a batch runs out of GPU
    memory. (Log-likelihood batches are sized by ``paw.eval.memory`` instead.)"""
    if batch_size != "auto":
        return int(batch_size)
    import torch

    return 64 if torch.cuda.is_available() else 32


def run_task(
    model, tokenizer, task: Task, data_file: str | None, options: EvalOptions, prompt_spec: dict | None = None
) -> TaskResult:
    """Score one task; ``prompt_spec`` is the adapter's paw_prompt.json (how it was prompted in training)."""
    import torch

    from paw.eval import distributed

    docs, _ = load_docs(task, data_file, options)
    pool = fewshot_pool(task, data_file, options.fewshot_files.get(task.name), options.num_fewshot)
    docs = with_fewshot(docs, options.num_fewshot, pool)
    auto = options.batch_size == "auto"
    rows = None if auto else int(options.batch_size)
    prompts, share = generation_batch_size(options.batch_size), AUTO_SHARE
    mine = distributed.shard(list(enumerate(docs)))
    start = time.perf_counter()
    while True:
        try:
            part = [d for _, d in mine]
            if task.kind == "multiple_choice":
                samples, tokens = score_choice_docs(model, tokenizer, part, rows, share)
            else:
                samples, tokens = score_generation_docs(model, tokenizer, task, part, prompts, prompt_spec)
            break
        except torch.cuda.OutOfMemoryError:
            if not auto or (prompts == 1 and share < 0.01):
                raise
            prompts, share = max(1, prompts // 2), share / 2  # the memory model was too hopeful: ask for less
            torch.cuda.empty_cache()
    seconds = time.perf_counter() - start
    indexed = distributed.gather([(i, s) for (i, _), s in zip(mine, samples, strict=True)])
    samples = [s for _, s in sorted(indexed, key=lambda pair: pair[0])]
    tokens = distributed.sum_int(tokens)
    metrics = aggregate(samples, task.metrics)
    return TaskResult(
        task.name, metrics, len(samples), seconds, tokens, samples if options.log_samples else []
    )
