"""The admin page's template and the repository listing behind it, without a worker.

The listing reads a real tracking database (SQLite in a temporary directory) written
through `TrackingDB` and `RepositoryIndex`, as the worker writes it.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.requests import Request

from gdk_geo.registry.backoff import Backoff
from gdk_geo.secondary.admin import page_json, render_page
from gdk_geo.secondary.repository_index import Filters, RepositoryIndex
from gdk_geo.secondary.tracking import TrackingDB

HOSTILE = "<script>alert(1)</script>"
HEALTH = {
    "replication_enabled": True,
    "cursor": 3,
    "primary_last_event_id": 4,
    "lag": 1,
    "last_event_at": None,
    "last_event_age_seconds": 0,
    "event_feed": {"connected": True, "error": None},
}


@pytest.fixture
def tracked(tmp_path: Path):
    db = TrackingDB(tmp_path / "tracking.sqlite3", backoff=Backoff(base=3600, cap=3600))
    index = RepositoryIndex(db.path)
    yield db, index
    index.close()
    db.close()


def _synced(db: TrackingDB, *names: str) -> None:
    db.start(names)
    for name in names:
        db.finish_success(name, None)


def test_filters_search_and_keyset_pages(tracked) -> None:
    db, index = tracked
    _synced(db, "a/one", "a/two", "b_x/three", "bax/four")
    db.start(["a/broken"])
    db.finish_failure("a/broken", "primary down")
    assert [r["repository"] for r in index.page(Filters(state="failed")).rows] == ["a/broken"]
    # `_` is a literal character in a search, not LIKE's wildcard.
    assert [r["repository"] for r in index.page(Filters(search="b_x")).rows] == ["b_x/three"]
    first = index.page(Filters(search="a/"), per_page=2)
    assert [r["repository"] for r in first.rows] == ["a/broken", "a/one"]
    second = index.page(Filters(search="a/"), after=first.next_after, per_page=2)
    assert [r["repository"] for r in second.rows] == ["a/two"] and second.next_after is None
    with pytest.raises(ValueError):
        Filters(state="bogus")
    with pytest.raises(ValueError):
        Filters(verification_state="bogus")


def test_verification_states_follow_syncs(tracked) -> None:
    db, index = tracked
    _synced(db, "g/ok", "g/bad")
    assert index.verification_counts() == {"pending": 2, "succeeded": 0, "failed": 0}
    index.record("g/ok", ok=True)
    index.record("g/bad", ok=False, failure="missing: v2")
    states = {r["repository"]: r for r in index.page(Filters()).rows}
    assert states["g/ok"]["verification_state"] == "succeeded"
    assert states["g/bad"]["verification_failure"] == "missing: v2"
    verified_at = states["g/ok"]["last_verified_at"]
    while time.time() <= verified_at:  # a later sync: its timestamp must sort after this one
        time.sleep(0.001)
    _synced(db, "g/ok", "g/bad")
    states = {r["repository"]: r for r in index.page(Filters()).rows}
    assert states["g/ok"]["verification_state"] == "pending", "a sync since: verify again"
    assert states["g/bad"]["verification_state"] == "failed", "a failure stands until a pass"
    assert index.names(Filters(verification_state="failed")) == ["g/bad"]


def test_the_page_escapes_what_it_shows() -> None:
    now = time.time()
    row = {
        "repository": "group/app",
        "state": "failed",
        "retry_count": 2,
        "retry_at": now + 5,
        "last_sync_failure": HOSTILE,
        "last_synced_at": None,
        "last_checked_at": None,
        "updated_at": now,
        "last_verified_at": None,
        "verification_state": "pending",
        "verification_failure": None,
    }
    data = {
        "counts": {"pending": 0, "started": 0, "synced": 0, "failed": 1},
        "verification_counts": {"pending": 1, "succeeded": 0, "failed": 0},
        "rechecks_due": 0,
        "repositories": [row],
        "next_after": None,
        "now": now,
        "health": {
            **HEALTH,
            "last_event_at": now,
            "event_feed": {"connected": False, "error": HOSTILE},
        },
    }
    filters = {"state": "", "verification_state": "", "search": HOSTILE, "after": ""}
    page = render_page(data, filters, csrf_token="token-for-this-process")
    assert HOSTILE not in page
    assert page.count("&lt;script&gt;") == 3  # the failure, the feed error, the search box
    assert "group/app" in page and 'content="token-for-this-process"' in page
    assert "lag 1" in page and "failed: 1" in page


def test_repositories_due_for_a_recheck_count_as_synced_and_are_shown(tracked) -> None:
    """Issue 25 #16: backfill's re-checks showed as pending syncs, and the synced bar read
    30% while nothing was out of sync."""
    db, index = tracked
    _synced(db, "g/one", "g/two")
    db.backfill(["g/one", "g/two"], older_than=0)
    request = Request({"type": "http", "query_string": b"", "headers": []})
    data = page_json(request, db, index, lambda: HEALTH)
    assert (data["counts"]["synced"], data["rechecks_due"]) == (2, 2)
    page = render_page(
        data, dict.fromkeys(("state", "verification_state", "search", "after"), ""), "t"
    )
    assert "re-checks due: 2" in page
    assert 'id="synced-percent">100%' in page
