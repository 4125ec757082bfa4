"""The CLI's consoles: messages never wrap inside a path or a command a user copies (soft wrap), and a table
piped to a file gets a fixed width instead of 80 columns."""

from __future__ import annotations

import sys

from rich.console import Console


def console(stderr: bool = True, piped_width: int | None = None) -> Console:
    """A rich Console for paw's lines: no syntax highlighting, soft-wrapped; ``piped_width`` when not a TTY."""
    stream = sys.stderr if stderr else sys.stdout
    width = None if piped_width is None or stream.isatty() else piped_width
    return Console(stderr=stderr, highlight=False, soft_wrap=True, width=width)
