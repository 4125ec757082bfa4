"""The CLI's edge: a PawError becomes one red line and its exit code; anything else exit 1 (traceback with
``--debug``)."""

from __future__ import annotations

import functools

import typer

from paw.errors import PawError

_state = {"debug": False}


def _err(message: str) -> None:
    from paw.cli.consoles import console

    console().print(f"[bold red]error:[/] {message}", markup=True)


def cli_errors(func):
    """Turn PawError into one red line and its exit code; other exceptions into exit 1 (traceback with --debug)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except typer.Exit:
            raise
        except PawError as err:
            if _state["debug"]:
                _show_causes(err)
                raise
            if not getattr(err, "quiet", False):  # quiet: another process prints it (a launched pipeline)
                _err(_escape(str(err)))
            raise typer.Exit(err.exit_code) from None
        except KeyboardInterrupt as err:
            hint = getattr(err, "hint", "")
            _err(f"interrupted ({err or 'SIGINT'})" + (f"; {_escape(hint)}" if hint else ""))
            raise typer.Exit(getattr(err, "exit_code", 130)) from None
        except Exception as err:  # a bug or an environment failure: say so, keep the traceback for --debug
            if _state["debug"]:
                raise
            _err(_escape(f"{type(err).__name__}: {err} (run 'paw --debug ...' for the traceback)"))
            raise typer.Exit(1) from None

    return wrapper


def _show_causes(err: BaseException) -> None:
    """With --debug, the original error behind a PawError is shown too: paw raises its one-line errors
    ``from None`` so a user sees one line, but Python keeps the original as the context; un-hide it."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        err.__suppress_context__ = False
        err = err.__cause__ or err.__context__


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)
