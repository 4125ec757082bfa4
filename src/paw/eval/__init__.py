"""Evaluation: scoring models on held-out data and benchmarks."""
