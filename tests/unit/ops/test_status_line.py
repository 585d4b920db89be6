"""`geo.status`'s line per secondary, from the worker's status JSON (no worker needed)."""

from __future__ import annotations

from gdk_geo.ops.status import _replication_line


def _status(**extra: object) -> dict:
    return {
        "replication_enabled": True,
        "cursor": 41,
        "primary_last_event_id": 43,
        "counts": {"synced": 1226, "pending": 2, "started": 0, "failed": 0},
        **extra,
    }


def test_the_line_counts_re_checks_apart_from_pending() -> None:
    line = _replication_line(_status(rechecks_due=462))
    assert line.startswith("synced 1226, pending 2, started 0, failed 0; 462 re-checks due;")
    assert "cursor 41, lag 2 events" in line


def test_an_older_worker_without_the_count_reads_as_none_due() -> None:
    assert "; 0 re-checks due;" in _replication_line(_status())


def test_a_worker_that_does_not_answer_says_so() -> None:
    assert _replication_line(None) == "its Geo worker does not answer"
