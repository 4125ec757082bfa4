"""Experiment dirs: safe names, the on-disk layout, metadata (status, versions, hardware)."""
