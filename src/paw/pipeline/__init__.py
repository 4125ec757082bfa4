"""``paw pipeline``: the transfer study as cached, resumable steps, and its report."""
