"""The one backoff: doubling, capped, jittered into [½, 1) of the ceiling, Retry-After first."""

from __future__ import annotations

import pytest

from gdk_geo.registry.backoff import Backoff
from gdk_geo.registry.transport import RetryPolicy


@pytest.mark.parametrize(("failures", "ceiling"), [(0, 1.0), (1, 2.0), (3, 8.0), (9, 300.0)])
def test_the_delay_doubles_up_to_the_cap(failures: int, ceiling: float) -> None:
    assert Backoff(1.0, 300.0, random=lambda: 1.0).delay(failures) == ceiling
    assert Backoff(1.0, 300.0, random=lambda: 0.0).delay(failures) == ceiling / 2


def test_the_jitter_stays_within_half_and_all_of_the_ceiling() -> None:
    backoff = Backoff(0.5, 30.0)
    delays = [backoff.delay(2) for _ in range(200)]
    assert all(1.0 <= delay <= 2.0 for delay in delays)
    assert len(set(delays)) > 1, "retries that failed together do not come back together"


def test_huge_failure_counts_do_not_overflow() -> None:
    assert Backoff(1.0, 300.0, random=lambda: 1.0).delay(10_000) == 300.0


def test_retry_after_replaces_the_delay_but_not_the_cap() -> None:
    backoff = Backoff(0.2, 5.0)
    assert backoff.delay(0, retry_after=3.0) == 3.0
    assert backoff.delay(0, retry_after=60.0) == 5.0


def test_the_retry_policy_uses_the_same_backoff() -> None:
    policy = RetryPolicy(attempts=3, backoff=Backoff(0.2, 5.0, random=lambda: 1.0))
    assert [policy.delay(attempt) for attempt in range(3)] == [0.2, 0.4, 0.8]
    assert RetryPolicy().backoff.cap == 5.0
