"""The secondary worker's HTTP face, in-process: JSON and Prometheus metrics.

The admin page is `test_admin_page.py`'s (template) and `test_admin_page_browser.py`'s.

Every snapshot here is taken the way the worker takes it (`status_snapshot` over a real
tracking database), never written out by hand.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import in_process_secondary_settings
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.secondary.results import Totals
from gdk_geo.secondary.snapshot import STATES, VERIFICATION_STATES, Rows, StatusSnapshot
from gdk_geo.secondary.status_page import create_app, render_metrics
from gdk_geo.secondary.tracking import TrackingDB
from gdk_geo.secondary.worker import Activity, status_snapshot

HOSTILE = "<script>alert(1)</script>"


def settings(root: Path, *, enabled: bool = True) -> SecondaryWorkerSettings:
    return in_process_secondary_settings(root, replication_enabled=enabled)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[TrackingDB]:
    tracking = TrackingDB(tmp_path / "geo" / "tracking.sqlite3")
    yield tracking
    tracking.close()


def snapshot_of(
    db: TrackingDB,
    root: Path,
    activity: Activity | None = None,
    totals: Totals | None = None,
    rows: Rows = "failing",
) -> StatusSnapshot:
    return status_snapshot(settings(root), db, totals or Totals(), activity or Activity(), rows)


def failed_row(db: TrackingDB, repository: str, reason: str) -> None:
    db.mark_pending(repository)
    assert db.claim_due(1) == [repository]
    db.finish_failure(repository, reason)


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by (name, labels): parsed, not matched."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_metrics_are_prometheus_text(db: TrackingDB, tmp_path: Path) -> None:
    failed_row(db, "group/app", "down")
    totals = Totals(syncs=3, sync_failures=1, bytes_copied=1024)
    text = render_metrics(snapshot_of(db, tmp_path, totals=totals))

    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert families["gdk_geo_repositories"].type == "gauge"
    assert families["gdk_geo_syncs"].type == "counter"
    values = metric_values(text)
    assert values["gdk_geo_repositories", (("state", "failed"),)] == 1
    assert {values["gdk_geo_repositories", (("state", s),)] for s in STATES} == {0, 1}
    for state in VERIFICATION_STATES:  # issue 15: each verification count too
        assert values["gdk_geo_repositories_verification", (("state", state),)] == 0
    assert values["gdk_geo_replication_enabled", ()] == 1
    assert values["gdk_geo_syncs_total", ()] == 3
    assert values["gdk_geo_sync_failures_total", ()] == 1
    assert values["gdk_geo_bytes_copied_total", ()] == 1024
    assert math.isnan(values["gdk_geo_primary_last_event_id", ()]), "unknown is NaN, not 0"
    assert math.isnan(values["gdk_geo_event_lag", ()])


def test_lag_and_event_age_follow_the_feed(db: TrackingDB, tmp_path: Path) -> None:
    db.apply_events(["group/app"], 7, time.time() - 5)
    activity = Activity(primary_last_event_id=10, feed_connected=True)
    snapshot = snapshot_of(db, tmp_path, activity)
    assert (snapshot.cursor, snapshot.lag) == (7, 3)
    assert 5 <= snapshot.last_event_age_seconds < 60
    values = metric_values(render_metrics(snapshot))
    assert values["gdk_geo_event_lag", ()] == 3
    assert values["gdk_geo_event_cursor", ()] == 7


def test_the_json_reads_back_as_the_same_snapshot(db: TrackingDB, tmp_path: Path) -> None:
    failed_row(db, "group/app", "down")
    db.apply_events(["group/base"], 4, 100.0)
    snapshot = snapshot_of(db, tmp_path, Activity(primary_last_event_id=4, feed_error="x"))
    data = json.loads(json.dumps(snapshot.to_json()))
    assert StatusSnapshot.from_json(data) == snapshot
    assert list(data) == [
        "node",
        "replication_enabled",
        "primary_api_url",
        "registry_api_url",
        "cursor",
        "primary_last_event_id",
        "lag",
        "last_event_at",
        "last_event_age_seconds",
        "event_feed",
        "last_backfill_at",
        "backfill_error",
        "last_verification_at",
        "counts",
        "verification_counts",
        "rechecks_due",
        "totals",
        "repositories",
    ], "the keys `geo.status --json` shows"
    assert "created_at" not in data["repositories"][0]


@pytest.mark.parametrize(
    "body", [None, [], {}, {"cursor": 1}, {"cursor": "x", "replication_enabled": True}]
)
def test_what_is_not_a_status_is_a_value_error(body: object) -> None:
    with pytest.raises(ValueError):
        StatusSnapshot.from_json(body)


def synced_row(db: TrackingDB, repository: str) -> None:
    db.mark_pending(repository)
    assert db.claim_due(1) == [repository]
    db.finish_success(repository, "sha256:" + "0" * 64)


def get_all(app: Starlette, *paths: str) -> list[httpx.Response]:
    """GET each path from the app in this process, through httpx's ASGI transport."""

    async def get() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://secondary") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(get())


def test_the_app_serves_one_snapshot_three_ways(db: TrackingDB, tmp_path: Path) -> None:
    failed_row(db, "group/app", HOSTILE)
    app = create_app(lambda rows: snapshot_of(db, tmp_path, rows=rows))
    health, status, metrics = get_all(
        app, "/-/health", "/api/v4/geo/replication/status", "/-/metrics"
    )
    health, status = health.json(), status.json()
    assert health == {"status": "ok", "node": "secondary", "cursor": 0, "replication_enabled": True}
    assert StatusSnapshot.from_json(status).repositories[0].last_sync_failure == HOSTILE
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert metric_values(metrics.text)["gdk_geo_repositories", (("state", "failed"),)] == 1


def test_only_the_status_json_takes_rows_and_by_default_the_failing_ones(
    db: TrackingDB, tmp_path: Path
) -> None:
    """Issue 15: health and metrics count in SQL; the JSON carries what `geo.check` names.

    At 10,000 tracked repositories a row each made every scrape cost half a second.
    """
    for name in ("group/a", "group/b", "group/c"):
        synced_row(db, name)
    failed_row(db, "group/broken", "connection refused")
    failed_row(db, "group/retried", "timeout")
    db.mark_pending("group/retried")  # retried after its failure: still failing
    asked: list[Rows] = []

    def status(rows: Rows) -> StatusSnapshot:
        asked.append(rows)
        return snapshot_of(db, tmp_path, rows=rows)

    app = create_app(status)
    health, metrics = get_all(app, "/-/health", "/-/metrics")
    assert health.status_code == metrics.status_code == 200
    assert asked == ["none", "none"]
    assert metric_values(metrics.text)["gdk_geo_repositories", (("state", "synced"),)] == 3

    default, every, none, wrong = get_all(
        app,
        "/api/v4/geo/replication/status",
        "/api/v4/geo/replication/status?repositories=all",
        "/api/v4/geo/replication/status?repositories=none",
        "/api/v4/geo/replication/status?repositories=some",
    )
    failing = StatusSnapshot.from_json(default.json())
    assert [row.repository for row in failing.repositories] == ["group/broken", "group/retried"]
    assert failing.counts == {"pending": 1, "started": 0, "synced": 3, "failed": 1}
    names = [row.repository for row in StatusSnapshot.from_json(every.json()).repositories]
    assert names == ["group/a", "group/b", "group/broken", "group/c", "group/retried"]
    assert none.json()["repositories"] == [] and none.json()["counts"] == failing.counts
    assert wrong.status_code == 400 and "none, failing, all" in wrong.json()["message"]


def test_rechecks_due_are_counted_apart_from_the_synced_repositories(
    db: TrackingDB, tmp_path: Path
) -> None:
    """Issue 25 #16: with 1,228 repositories in sync and `backfill_interval: 5s`, the status
    swung between "synced 760, pending 462" and "synced 378, pending 846": backfill's
    re-checks were pending syncs. They stay synced, and are counted in SQL on their own."""
    for name in ("group/a", "group/b", "group/c"):
        synced_row(db, name)
    db.backfill(["group/a", "group/b"], older_than=0)
    app = create_app(lambda rows: snapshot_of(db, tmp_path, rows=rows))
    status, metrics = get_all(app, "/api/v4/geo/replication/status", "/-/metrics")
    data = status.json()
    assert data["counts"] == {"pending": 0, "started": 0, "synced": 3, "failed": 0}
    assert data["rechecks_due"] == 2
    assert StatusSnapshot.from_json(data).rechecks_due == 2
    assert metric_values(metrics.text)["gdk_geo_rechecks_due", ()] == 2
    del data["rechecks_due"]  # what a worker of the previous release answers
    assert StatusSnapshot.from_json(data).rechecks_due == 0
