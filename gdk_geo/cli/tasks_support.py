"""What every `geo.*` task family shares: finding the project, checking `--node`, printing
plain lines and showing long steps.

Kept apart from the task modules so each family imports one small module; nothing here
imports beyond the console and the project layout at start-up, because every `invoke`
call (even `invoke --list`) imports it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.exceptions import Exit

from gdk_geo.cli.console import err, out
from gdk_geo.errors import GdkGeoError, clipped
from gdk_geo.project import Project
from gdk_geo.settings import NODE_NAMES

if TYPE_CHECKING:
    from gdk_geo.runtime.image import Progress as ImageProgress

# Flag help shared by several tasks, written once so the tasks cannot drift apart.
FORCE_HELP = "Overwrite rendered files edited by hand (each is backed up first)."
NODE_HELP = "primary or secondary (default: both)"


def project_of(c) -> Project:
    """The project the task runs in: the invoke config's root (set by `tasks.py`) or the
    directory that `Project.locate` finds."""
    root = c.config.get("gdk_geo", {}).get("root") if hasattr(c, "config") else None
    return Project.locate(Path(root) if root else None)


def check_node(c, node: str | None) -> None:
    """A usage error (exit 2) unless `node` names a node of gdk.yml (or of the record)."""
    if node is None:
        return
    project = project_of(c)
    try:
        names = list(project.load().node_names)
    except GdkGeoError:  # a broken gdk.yml: the nodes the project last started
        # Imported here, on this path alone, so `invoke --list` does not pay for it.
        from gdk_geo.project import record

        names = [n for r in record.read(project) for n in r.node_names] or list(NODE_NAMES)
    if node not in names:
        *rest, last = list(dict.fromkeys(names))
        err.print(
            f"--node must be {', '.join(rest)} or {last}, not {clipped(node, repr)}", markup=False
        )
        raise Exit(code=2)


def say(message: str) -> None:
    """Print a step's message as it is: paths and names hold brackets that are not markup."""
    out.print(message, markup=False, highlight=False)


def _progress(last_column: str):
    """A transient rich bar (spinner, description, bar, `last_column`); imported only here,
    for a terminal, so scripts and CI don't pay for it."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
    return Progress(*columns, TextColumn(last_column), console=out, transient=True)


@contextmanager
def long_steps() -> Iterator[ImageProgress]:
    """Report long steps: a live bar (bytes for a pull) on a terminal, plain lines elsewhere.

    Each new step is also printed once, so what happened stays on screen after the bar.
    """
    from gdk_geo.runtime.image import Step, messages

    if not out.is_terminal:
        yield messages(say)
        return
    with _progress("{task.fields[size]}") as progress:
        bar = progress.add_task("", total=None, size="")
        say_once = messages(lambda message: progress.console.print(message, markup=False))

        def report(step: Step) -> None:
            say_once(step)
            size = f"{step.done / 1e6:.1f}/{step.total / 1e6:.1f} MB" if step.total else ""
            progress.update(
                bar, description=step.message, completed=step.done or 0, total=step.total, size=size
            )

        yield report
