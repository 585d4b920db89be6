"""Exponential backoff with jitter: how long to wait after the n-th failure in a row.

One implementation for every retry in the services: the registry client's retried requests
(`RetryPolicy`), a failed repository sync (the tracking database's `retry_at`) and the
worker's reconnects to the primary's event API.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    """`delay = min(cap, base * 2 ** failures) * jitter`, `jitter` uniform in [0.5, 1.0).

    `failures` counts the failures *before* this one (0 on the first). Doubling keeps a
    broken peer from being hammered; the cap keeps something that was down for an hour from
    waiting another hour once it is back; the jitter spreads the retries of many callers that
    failed together (a registry restart) so they don't return as a thundering herd. `random`
    is a parameter so tests can pin the jitter.
    """

    base: float = 1.0
    cap: float = 300.0
    random: Callable[[], float] = random.random

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait; a server's `Retry-After` (capped) replaces the computed delay."""
        if retry_after is not None:
            return min(retry_after, self.cap)
        exponent = min(max(failures, 0), 64)  # 2**64 s is already far past any cap
        return min(self.cap, self.base * 2**exponent) * (0.5 + 0.5 * self.random())
