"""The tasks that look and change nothing: `geo.status`, `geo.check` and `geo.logs`.

The work lives in `status.py`, `checks.py` and `logs.py`, imported inside each task so
`invoke --list` stays cheap.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import TYPE_CHECKING

from invoke import task
from invoke.exceptions import Exit
from rich.text import Text

from gdk_geo.cli.console import err, out, user_errors
from gdk_geo.cli.tasks_support import NODE_HELP, check_node, project_of
from gdk_geo.errors import GdkGeoError, clipped

if TYPE_CHECKING:
    from gdk_geo.doctor import checks
    from gdk_geo.runtime import logs as geo_logs


@task(help={"json": "Print JSON for scripts instead of a table."})
@user_errors
def status(c, json_=False):
    """Per node: container, image, ports, health, uptime, certificate; services; replication."""
    from gdk_geo.ops import status as node_status

    report = node_status.collect(project_of(c))
    if json_:
        print(json.dumps(report, indent=2, default=str))
    else:
        node_status.print_table(report, out)


_CHECK_STYLES = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


def _print_check(result: checks.Result) -> None:
    """One check's line, its mark coloured by outcome, then its explanation (the fix)."""
    from gdk_geo.doctor import checks

    line = Text(checks.headline(result))
    line.stylize(_CHECK_STYLES[result.outcome.status], 0, 1)
    out.print(line, soft_wrap=True)
    for extra in checks.explanation(result):
        out.print(extra, markup=False, highlight=False, soft_wrap=True)


@task(name="check")
@user_errors
def check(c):
    """Diagnose every node like `gdk doctor`: one line per check, the exact fix for each ✗."""
    from gdk_geo.doctor import checks

    with out.status("checking"):
        results = checks.run_checks(project_of(c), _print_check)
    counts = {status: 0 for status in checks.MARKS}
    for result in results:
        counts[result.outcome.status] += 1
    out.print(
        f"geo.check: {counts['passed']} ✓, {counts['failed']} ✗, {counts['skipped']} skipped",
        highlight=False,
    )
    if counts["failed"]:
        raise Exit(code=1)


def _tail_count(raw: str) -> int:
    """`--tail` as a count of lines; anything else is a usage error, like a wrong --node.

    The flag is read as text (an int default made invoke's own int() raise a traceback at
    `--tail abc`), and a negative count used to mean "everything"."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()):
        err.print(
            f"--tail must be a number of lines (0 or more; 0: all), not {clipped(str(raw), repr)}",
            markup=False,
        )
        raise Exit(code=2)
    return int(text)


def _write_line(line: geo_logs.LogLine) -> None:
    """A followed line goes out at once: `--follow` is read as it happens."""
    sys.stdout.write(line.render() + "\n")
    sys.stdout.flush()


@task(
    help={
        "node": NODE_HELP,
        "follow": "Keep printing new lines until Ctrl-C.",
        "tail": "Only the last N lines of each log (default 0: all).",
    }
)
@user_errors
def logs(c, node=None, follow=False, tail="0"):
    """The registry and Geo service logs of every node, interleaved by time, with prefixes."""
    from gdk_geo.runtime import containers
    from gdk_geo.runtime import logs as geo_logs

    check_node(c, node)
    count = _tail_count(tail)
    project = project_of(c)
    try:
        client = containers.engine()
    except GdkGeoError as exc:
        err.print(f"note: {exc.what}; showing the Geo service logs only", markup=False)
        client = None
    chosen = geo_logs.sources(project, node, client)
    try:
        for line in geo_logs.history(chosen, count):
            sys.stdout.write(line.render() + "\n")
        sys.stdout.flush()
        if follow:
            geo_logs.follow(chosen, _write_line, threading.Event())
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends: not an error
    except BrokenPipeError:
        # `invoke geo.logs | head`: the reader left; stop quietly, as `cat` would.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (closed by the interpreter)
