"""``paw export``: a trained adapter to the stacks users serve with — GGUF for llama.cpp, a GGUF plus a
``Modelfile`` for Ollama, and the merged safetensors model — through llama.cpp's own converters."""
