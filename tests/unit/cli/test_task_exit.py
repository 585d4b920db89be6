"""The tasks' process exit: the heap is frozen first, so the final collections skip it."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO_ROOT


def test_the_heap_is_frozen_at_exit_and_earlier_exit_hooks_still_run() -> None:
    """`gdk_geo.cli.tasks` registers `gc.freeze` at exit (bench/RESULTS.md: a fifth of
    `invoke --list`). A hook registered before it runs after it (atexit is last in, first
    out), sees the frozen heap, and its output still reaches the pipe."""
    code = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('at exit, frozen:', gc.get_freeze_count() > 0))\n"
        "import gdk_geo.cli.tasks\n"
        "print('tasks imported; frozen now:', gc.get_freeze_count() > 0)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "tasks imported; frozen now: False",
        "at exit, frozen: True",
    ]
