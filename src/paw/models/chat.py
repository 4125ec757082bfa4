"""Chat template facts: the end-of-turn token, and the prompt spec saved next to every adapter.

The classic "model never stops" bug: Qwen2.5 base's EOS is ``<|endoftext|>`` but its chat template ends a turn
with ``<|im_end|>``; a model trained on the template learns to emit ``<|im_end|>``, and generation that only
stops at EOS runs on. paw detects the end-of-turn token, warns, and generates with both as stop tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

PROMPT_SPEC_FILE = "paw_prompt.json"
_PROBE = "PAWPROBEANSWER"


def end_of_turn_token(tokenizer: Tokenizer) -> str | None:
    """The special token the chat template writes right after an assistant message (None without a template)."""
    if not getattr(tokenizer, "chat_template", None):
        return None
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}]
    try:
        rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # a template that rejects this probe: nothing to say
        return None
    tail = rendered.split(_PROBE, 1)[-1]
    specials = set(tokenizer.all_special_tokens) | set(getattr(tokenizer, "added_tokens_encoder", {}))
    for token in tokenizer.tokenize(tail):
        if token in specials:
            return token
    return None


def eos_warnings(tokenizer: Tokenizer, uses_chat_template: bool) -> list[str]:
    """Warnings about EOS vs the template's end-of-turn token, for data_validation.json and the log."""
    if not uses_chat_template:
        return []
    end = end_of_turn_token(tokenizer)
    if end is None or end == tokenizer.eos_token:
        return []
    return [
        f"tokenizer EOS '{tokenizer.eos_token}' is not the chat template's end-of-turn token '{end}': the model "
        f"learns to end answers with '{end}'; paw's inference and eval stop on both (set your server's stop "
        f"tokens to include '{end}')"
    ]


def uses_chat_template(fmt: str, prompt_template: str) -> bool:
    """Whether rows of this data format are rendered with the tokenizer's chat template."""
    return fmt == "messages" or (fmt == "alpaca" and prompt_template == "chat")


def prompt_spec(tokenizer: Tokenizer, fmt: str, prompt_template: str) -> dict[str, Any]:
    """What inference/eval need to prompt the trained adapter exactly as in training."""
    uses_chat = uses_chat_template(fmt, prompt_template)
    end = end_of_turn_token(tokenizer) if uses_chat else None
    stops = [t for t in dict.fromkeys([tokenizer.eos_token, end]) if t]
    return {
        "format": fmt,
        "prompt_template": "chat" if uses_chat else ("alpaca" if fmt == "alpaca" else "text"),
        "chat_template": tokenizer.chat_template if uses_chat else None,
        "eos_token": end if uses_chat and end else tokenizer.eos_token,
        "stop_tokens": stops,
    }


def carry_prompt_spec(adapter: str | Path, tokenizer_source: str | Path, out: str | Path) -> bool:
    """Write into ``out`` the prompt spec of ``adapter`` re-derived with another base's tokenizer (a transferred
    adapter is prompted in the format it was trained in, with the target's own chat template and stop tokens).
    False when the adapter has no spec (not trained by paw)."""
    import json

    from transformers import AutoTokenizer

    from paw.utils.io import atomic_write_json

    spec_file = Path(adapter) / PROMPT_SPEC_FILE
    if not spec_file.is_file():
        return False
    spec = json.loads(spec_file.read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_source))
    template = "chat" if spec.get("prompt_template") == "chat" else "alpaca"
    atomic_write_json(
        Path(out) / PROMPT_SPEC_FILE, prompt_spec(tokenizer, spec.get("format", "alpaca"), template)
    )
    return True
