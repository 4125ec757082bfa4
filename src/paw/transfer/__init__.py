"""LoRA adapter transfer between base models (``paw transfer``)."""
