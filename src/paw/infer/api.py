"""``paw infer`` as a function: build each prompt as the model expects it, generate in batches, write results.

Prompt template (``template``): ``auto`` follows the adapter's ``paw_prompt.json`` (how it was trained: Alpaca
prompt or chat template) and otherwise uses the tokenizer's chat template when it has one; ``chat``, ``alpaca``
and ``raw`` (the text as given) force one. Chat rows (``messages``) always use the chat template.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paw.data.formats import alpaca_prompt
from paw.errors import PawError
from paw.infer.inputs import InferInput
from paw.models.generate import Sampling, generate
from paw.utils.io import atomic_write_json

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

TEMPLATES = ("auto", "chat", "alpaca", "raw")


def resolve_template(template: str, prompt_spec: dict | None, tokenizer: Tokenizer) -> str:
    if template != "auto":
        return template
    if prompt_spec:  # paw_prompt.json calls the verbatim template "text"
        trained = prompt_spec.get("prompt_template", "text")
        return "raw" if trained == "text" else trained
    return "chat" if getattr(tokenizer, "chat_template", None) else "raw"


def build_prompt(item: InferInput, template: str, tokenizer: Tokenizer) -> str:
    if item.messages is not None or template == "chat":
        if not getattr(tokenizer, "chat_template", None):
            raise PawError(
                "chat input needs a tokenizer with a chat template; this model has none (use --template raw)"
            )
        if item.messages is not None:
            messages = list(item.messages)
        else:
            text = (
                item.text
                if item.text is not None
                else "\n\n".join(filter(None, (item.instruction, item.input)))
            )
            messages = [{"role": "user", "content": text}]
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if template == "alpaca":
        return alpaca_prompt(
            item.instruction if item.instruction is not None else item.text or "", item.input
        )
    if item.instruction is not None:
        return "\n\n".join(filter(None, (item.instruction, item.input)))
    return item.text or ""


def infer(
    inputs: list[InferInput],
    model: str | None,
    adapter: str | None = None,
    sampling: Sampling = Sampling(max_new_tokens=128),
    template: str = "auto",
    batch_size: int = 8,
    output_file: str | Path | None = None,
    stream: bool = False,
    dtype: str = "auto",
    models_dir: str | None = None,
    other_base: bool = False,
) -> dict[str, Any]:
    """Generate for every input; returns (and with ``output_file`` writes) the results."""
    from paw.models.chat import end_of_turn_token
    from paw.models.loaded import load_for_eval

    if template not in TEMPLATES:  # before loading anything
        raise PawError(f"--template '{template}' is unknown; choose from {', '.join(TEMPLATES)}")
    loaded = load_for_eval(model, adapter, dtype, models_dir, other_base)
    tokenizer = loaded.tokenizer
    chosen = resolve_template(template, loaded.prompt_spec, tokenizer)
    prompts = [build_prompt(item, chosen, tokenizer) for item in inputs]
    stops = (loaded.prompt_spec or {}).get("stop_tokens")
    if not stops:
        end = end_of_turn_token(tokenizer) if chosen == "chat" or any(i.messages for i in inputs) else None
        stops = [t for t in dict.fromkeys([tokenizer.eos_token, end]) if t]
    streamer = None
    if stream:
        from transformers import TextStreamer

        streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    started = time.perf_counter()
    outputs = generate(
        loaded.model,
        tokenizer,
        prompts,
        batch_size=batch_size,
        stop_tokens=stops,
        sampling=sampling,
        streamer=streamer,
    )
    seconds = time.perf_counter() - started
    new_tokens = sum(len(tokenizer(o, add_special_tokens=False)["input_ids"]) for o in outputs)
    results = {
        "model": loaded.name,
        "adapter": loaded.adapter,
        "template": chosen,
        "sampling": {**sampling.__dict__},
        "seconds": round(seconds, 3),
        "new_tokens_per_s": round(new_tokens / seconds, 1) if seconds else None,
        "results": [
            {"input": item.shown(), "prompt": prompt, "output": output}
            for item, prompt, output in zip(inputs, prompts, outputs, strict=True)
        ],
    }
    if output_file is not None:
        atomic_write_json(output_file, results)
    return results
