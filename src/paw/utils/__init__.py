"""Small helpers with no heavy imports."""
