"""Data: reading files, formatting rows into prompts, tokenising with loss masks, synthetic tasks."""
