"""Waiting for a process to end: shared by the Geo services' and the link relays' stops."""

from __future__ import annotations

import contextlib
import os
import time

import psutil

POLL_SECONDS = 0.02


def wait_gone(pid: int, timeout: float) -> bool:
    """Whether `pid` ended within `timeout`: gone, or a zombie.

    A zombie counts as gone: a service or relay outlives the `invoke` that started it, so
    its parent is init, which reaps when it gets to it. `psutil.Process.wait` waited for
    that reaping too, which cost every stop (and so every `geo.restart`) up to 2 s on
    systems whose init reaps slowly, while the process itself had exited in a tenth of that.
    """
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.Error:
            return True  # gone already
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)
