"""Printing for the tasks: a rich console, user errors without tracebacks, masked diffs."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any, TextIO, TypeVar

from invoke.exceptions import Exit
from rich.console import Console
from rich.text import Text

from gdk_geo.errors import GdkGeoError

UNBOUNDED = 10_000  # columns for output that is not a terminal


def _console(stream: TextIO) -> Console:
    """A console for `stream` that wraps only on a terminal.

    In a pipe, a file or CI, rich assumed 80 columns: lines broke in the middle of URLs and
    paths, and tables were cropped with "…". There a line is what scripts and readers search
    for, so nothing wraps and tables take the width they need (COLUMNS, when set, still
    rules, as on a terminal).
    """
    terminal = stream.isatty()
    width = None if terminal or "COLUMNS" in os.environ else UNBOUNDED
    return Console(
        stderr=stream is sys.stderr, highlight=False, soft_wrap=not terminal, width=width
    )


out = _console(sys.stdout)
err = _console(sys.stderr)

F = TypeVar("F", bound=Callable[..., Any])


class TaskEnded(Exception):
    """The task printed its outcome already and ends with `code`: raised by the work below
    a task (a pass whose worker stopped, a registry that cannot be read) so that only the
    task's wrapper turns it into the process's exit code, and callers that go on (one
    node of several) can catch it as a value."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def user_errors(task: F) -> F:
    """Turn a GdkGeoError into a red message and exit 1, a TaskEnded into its exit code,
    and Ctrl-C into exit 130. The message is printed as text, never read as rich markup:
    it quotes what the user gave, and a value such as `[/x]` raised a MarkupError (with a
    traceback) while `[bold]` vanished from the message."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except GdkGeoError as exc:
            err.print(Text.assemble(("✗", "bold red"), " ", exc.what), soft_wrap=True)
            if exc.where:
                err.print(f"  where: {exc.where}", markup=False, soft_wrap=True)
            if exc.fix:
                err.print(f"  fix:   {exc.fix}", markup=False, soft_wrap=True)
            raise Exit(code=1) from None
        except TaskEnded as ended:
            raise Exit(code=ended.code) from None
        except KeyboardInterrupt:
            err.print("interrupted; run the same command again to converge", markup=False)
            raise Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def diff(text: str) -> None:
    """Show a unified diff (secrets already masked by the renderer)."""
    if sys.stdout.isatty():
        from rich.syntax import Syntax  # pygments: only when there is a diff to show

        out.print(Syntax(text, "diff", theme="ansi_dark", background_color="default"))
    else:
        out.print(text, markup=False, end="")
