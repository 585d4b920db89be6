"""Printing for the tasks: a rich console, user errors without tracebacks, masked diffs."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.exceptions import Exit
from rich.console import Console

from gdk_geo.errors import GdkGeoError

# Wrapping is for a terminal: in a pipe, a file or CI, rich's 80 columns broke lines in the
# middle of URLs and paths, and a line is what scripts and readers search for.
out = Console(highlight=False, soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, highlight=False, soft_wrap=not sys.stderr.isatty())

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(task: F) -> F:
    """Turn a GdkGeoError into a red message and exit 1, and Ctrl-C into exit 130."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except GdkGeoError as exc:
            err.print(f"[bold red]✗[/] {exc.what}", markup=True, soft_wrap=True)
            if exc.where:
                err.print(f"  where: {exc.where}", markup=False, soft_wrap=True)
            if exc.fix:
                err.print(f"  fix:   {exc.fix}", markup=False, soft_wrap=True)
            raise Exit(code=1) from None
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
