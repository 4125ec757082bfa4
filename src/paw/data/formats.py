"""Row formats: turn an Alpaca, chat ``messages``, ``prompt``/``completion`` or plain ``text`` row into (text,
in-loss) segments.

A segment list like ``[("prompt ...", False), ("answer<eos>", True)]`` is what the tokeniser step needs: the
prompt is masked from the loss, the completion is not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from paw.errors import PawError

if TYPE_CHECKING:
    from paw.utils.hf_types import Tokenizer

FORMATS = ("alpaca", "messages", "prompt_completion", "text")
ALPACA_PROMPT = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_PROMPT_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
REQUIRED = {
    "alpaca": ("instruction", "output"),
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "text": ("text",),
}

Segments = list[tuple[str, bool]]


def detect_format(row: dict[str, Any], where: str) -> str:
    """Guess the format from a row's keys."""
    keys = set(row)
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if "messages" in keys or "conversations" in keys:
        return "messages"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if "text" in keys:
        return "text"
    raise PawError(
        f"{where}: cannot tell the data format from keys {sorted(keys)}; expected alpaca "
        "(instruction, input, output), chat (messages), prompt/completion or text; set data.format"
    )


def _field(row: dict[str, Any], key: str, where: str, optional: bool = False) -> str:
    if key not in row or row[key] is None:
        if optional:
            return ""
        raise PawError(f"{where}: missing field '{key}'")
    value = row[key]
    if not isinstance(value, str):
        raise PawError(f"{where}: field '{key}' must be a string, got {type(value).__name__}")
    return value


def alpaca_prompt(instruction: str, input_text: str = "") -> str:
    """The Alpaca prompt (as in Stanford Alpaca and the LLM-Adapters commonsense recipe)."""
    if input_text.strip():
        return ALPACA_PROMPT_WITH_INPUT.format(instruction=instruction, input=input_text)
    return ALPACA_PROMPT.format(instruction=instruction)


def alpaca_messages(row: dict[str, Any], where: str) -> list[dict[str, str]]:
    instruction = _field(row, "instruction", where)
    input_text = _field(row, "input", where, optional=True)
    user = f"{instruction}\n\n{input_text}" if input_text.strip() else instruction
    return [{"role": "user", "content": user}, {"role": "assistant", "content": _field(row, "output", where)}]


def check_messages(row: dict[str, Any], where: str) -> list[dict[str, str]]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise PawError(f"{where}: field 'messages' must be a non-empty list of {{role, content}} objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not {"role", "content"} <= set(message):
            raise PawError(f"{where}: messages[{i}] must be an object with 'role' and 'content'")
        if message["role"] not in ("system", "user", "assistant", "tool"):
            raise PawError(
                f"{where}: messages[{i}].role '{message['role']}' is not system/user/assistant/tool"
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise PawError(f"{where}: no assistant message to learn from")
    return [{"role": m["role"], "content": str(m["content"])} for m in messages]


def chat_segments(tokenizer: Tokenizer, messages: list[dict[str, str]], where: str) -> Segments:
    """Render with the tokenizer's chat template; every assistant turn (with its end-of-turn token) is in the loss."""
    if not getattr(tokenizer, "chat_template", None):
        raise PawError(f"{where}: chat data needs a tokenizer with a chat template; this tokenizer has none")
    segments: Segments = []
    rendered = ""
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        upto = tokenizer.apply_chat_template(messages[: i + 1], tokenize=False)
        if not prefix.startswith(rendered) or not upto.startswith(prefix):
            raise PawError(
                f"{where}: the chat template does not render turns incrementally; cannot mask the prompt"
            )
        segments += [(prefix[len(rendered) :], False), (upto[len(prefix) :], True)]
        rendered = upto
    return [(text, loss) for text, loss in segments if text]


def plain_text(row: dict[str, Any], where: str) -> str:
    """A row as one plain string, the same under every tokenizer (no chat template, no EOS): what activation
    statistics are taken on. Alpaca rows get the Alpaca prompt; chat turns are joined by blank lines."""
    fmt = detect_format(row, where)
    if fmt == "alpaca":
        prompt = alpaca_prompt(_field(row, "instruction", where), _field(row, "input", where, optional=True))
        return prompt + _field(row, "output", where)
    if fmt == "messages":
        return "\n\n".join(m["content"] for m in check_messages(row, where))
    if fmt == "prompt_completion":
        return _field(row, "prompt", where) + _field(row, "completion", where)
    return _field(row, "text", where)


def row_segments(
    row: dict[str, Any], where: str, fmt: str, prompt_template: str, tokenizer: Tokenizer
) -> Segments:
    """Segments of one row. Alpaca with the Alpaca prompt (and text) append the tokenizer's EOS to the answer."""
    for key in REQUIRED[fmt]:
        if key not in row:
            raise PawError(f"{where}: missing field '{key}' (data.format is {fmt})")
    if fmt == "alpaca" and prompt_template == "alpaca":
        prompt = alpaca_prompt(_field(row, "instruction", where), _field(row, "input", where, optional=True))
        return [(prompt, False), (_field(row, "output", where) + tokenizer.eos_token, True)]
    if fmt == "alpaca":
        return chat_segments(tokenizer, alpaca_messages(row, where), where)
    if fmt == "messages":
        return chat_segments(tokenizer, check_messages(row, where), where)
    if fmt == "prompt_completion":  # TRL's prompt-completion rows, taken verbatim (no template)
        completion = _field(row, "completion", where) + tokenizer.eos_token
        return [(_field(row, "prompt", where), False), (completion, True)]
    return [(_field(row, "text", where) + tokenizer.eos_token, True)]


def segment_ids(tokenizer: Tokenizer, segments: Segments) -> list[list[int]]:
    """Each segment's token ids, from one tokenisation of their concatenation (no special tokens added).

    Evaluation and generation tokenise the whole text, so training must too: a SentencePiece tokenizer with a
    dummy prefix (Llama-2, Mistral, Phi-3) gives a segment tokenised alone a leading ``▁`` that the same words never
    get after a prompt (``"\\nfruit"`` → ``<0x0A> fr u it``, ``"fruit"`` alone → ``▁fr u it``), and a model trained
    on those tokens learns answers it is never scored on. A token that spans a boundary belongs to the segment
    holding its last character (as lm-eval gives a context's trailing space to the continuation). Tokenizers without
    offsets (slow ones) tokenise each segment alone.
    """
    texts = [text for text, _ in segments]
    if not getattr(tokenizer, "is_fast", False):
        return [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
    encoded = tokenizer("".join(texts), add_special_tokens=False, return_offsets_mapping=True)
    ends, total = [], 0
    for text in texts:
        total += len(text)
        ends.append(total)
    pieces: list[list[int]] = [[] for _ in texts]
    segment = 0
    for token, (_, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True):
        while segment < len(texts) - 1 and end > ends[segment]:
            segment += 1
        pieces[segment].append(token)
    return pieces
