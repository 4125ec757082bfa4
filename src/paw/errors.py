"""The one error type users see: bad input, stated with its file/line/field and the fix.

The CLI catches :class:`PawError` and exits with code 2 without a traceback; any other exception is a bug
(or a runtime failure) and exits with code 1, keeping its traceback under ``--debug``.
"""

from __future__ import annotations


class PawError(Exception):
    """Bad input (config, data, usage). ``str(err)`` is the one line shown to the user."""

    exit_code = 2


class PawRuntimeError(PawError):
    """A run failed for a reason that is not the user's input (e.g. the loss became non-finite)."""

    exit_code = 1


def where(path: object, line: int | None = None) -> str:
    """Format a location as ``path:line`` (or just ``path``)."""
    return f"{path}:{line}" if line is not None else str(path)


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT (Ctrl-C) or SIGTERM (a scheduler): its state was recorded; ``hint`` says how to go
    on. The CLI exits 128 + the signal number (130, 143), as shells do."""

    def __init__(self, signum: int, hint: str = "") -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum, self.hint = signum, hint

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


def raise_interrupted(signum: int, frame: object) -> None:
    """A signal handler: SIGINT/SIGTERM become :class:`Interrupted` where the run can record its state."""
    raise Interrupted(signum)
