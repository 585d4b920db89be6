"""A poll that runs in a thread for the length of a `with` block.

Tests and benchmarks watch what a registry or a worker shows while something else happens
(a sync, a run of pushes): `Watch.poll` is called every `interval` seconds until the block
ends, and the thread is joined on the way out.
"""

from __future__ import annotations

import threading
from typing import Self


class Watch:
    """Subclass and define `poll`; use as `with MyWatch(...) as watch:`."""

    interval = 0.05

    def __init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def poll(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.poll()
            self._stop.wait(self.interval)
