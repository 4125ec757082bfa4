"""Model resolution (aliases, local dirs, hub ids, built-in tiny models) and loading."""
