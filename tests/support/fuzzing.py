"""How many examples a hypothesis test draws: its own count, scaled for a quick run.

`make test` draws every test's full count. `make test-fast` sets GDK_GEO_FUZZ_SCALE (0.2 by
default, `make test-fast FUZZ_SCALE=1` for the full count): the notification fuzz alone
draws 1,000 examples in about 40 s of one core, most of it hypothesis generating them, and
the fast loop is meant to take well under a minute.
"""

from __future__ import annotations

import os

SCALE = float(os.environ.get("GDK_GEO_FUZZ_SCALE") or 1)


def examples(count: int) -> int:
    """`count` scaled by GDK_GEO_FUZZ_SCALE, never below 10."""
    return max(10, round(count * SCALE))
