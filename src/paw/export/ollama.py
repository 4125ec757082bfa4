"""An Ollama ``Modelfile`` for an exported GGUF: ``FROM`` the file, the ``TEMPLATE`` the adapter was trained with
(Ollama templates are Go templates, not the tokenizer's Jinja: the chat format is recognised by its markers —
ChatML, Llama-3, Phi-3, Gemma — or the Alpaca prompt paw trained on), and a ``PARAMETER stop`` per stop token.
"""

from __future__ import annotations

from typing import Any

from paw.data.formats import ALPACA_PROMPT
from paw.errors import PawError

# marker in the Jinja chat template -> (Ollama template, its end-of-turn token)
CHAT_FORMATS = {
    "<|im_start|>": (
        "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
        "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n",
        "<|im_end|>",
    ),
    "<|start_header_id|>": (
        "{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n{{ .System }}<|eot_id|>{{ end }}"
        "{{ if .Prompt }}<|start_header_id|>user<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}"
        "<|start_header_id|>assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>",
        "<|eot_id|>",
    ),
    "<|assistant|>": (
        "{{ if .System }}<|system|>\n{{ .System }}<|end|>\n{{ end }}"
        "{{ if .Prompt }}<|user|>\n{{ .Prompt }}<|end|>\n{{ end }}<|assistant|>\n{{ .Response }}<|end|>\n",
        "<|end|>",
    ),
    "<start_of_turn>": (
        "<start_of_turn>user\n{{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}<end_of_turn>\n"
        "<start_of_turn>model\n{{ .Response }}<end_of_turn>\n",
        "<end_of_turn>",
    ),
}


def template_for(spec: dict[str, Any]) -> tuple[str, list[str]]:
    """The Go template and stop tokens for an adapter's prompt spec (``paw_prompt.json``)."""
    stops = list(spec.get("stop_tokens") or [])
    if spec.get("prompt_template") == "chat":
        jinja = spec.get("chat_template") or ""
        for marker, (template, end) in CHAT_FORMATS.items():
            if marker in jinja:
                return template, list(dict.fromkeys([end, *stops]))
        raise PawError(
            "--format ollama: the adapter was trained with a chat template paw cannot write as an Ollama TEMPLATE "
            f"(it knows {', '.join(CHAT_FORMATS)}); use --format gguf and write the Modelfile's TEMPLATE by hand"
        )
    if spec.get("prompt_template") == "alpaca":
        return ALPACA_PROMPT.replace("{instruction}", "{{ .Prompt }}") + "{{ .Response }}", stops
    return "{{ .Prompt }}{{ .Response }}", stops


def modelfile(gguf_name: str, spec: dict[str, Any]) -> str:
    """The Modelfile text for the merged model's GGUF (the adapter is in its weights: no ``ADAPTER`` line)."""
    template, stops = template_for(spec)
    lines = [f"FROM ./{gguf_name}", f'TEMPLATE """{template}"""']
    lines += [f'PARAMETER stop "{stop}"' for stop in stops]
    lines.append("PARAMETER temperature 0")
    return "\n".join(lines) + "\n"
