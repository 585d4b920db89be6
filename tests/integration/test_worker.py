"""The secondary's Geo worker, run for real against real registries and the primary's service.

The tests run the worker as a subprocess (`python -m gdk_geo.secondary`) against two real
registries and the primary's real Geo service (`worker_rig`), which the primary registry
notifies on every push. Nothing is mocked: an image pushed over HTTP to the primary registry
reaches the secondary through notification → event log → event API → worker → sync, exactly
as in `geo.setup`.

The registries share one module-wide setup; every test runs its own worker with its own
tracking database and its own repositories, so the tests don't depend on each other.
The worker's process without Docker is in test_worker_process.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx
import pytest
import worker_rig
from prometheus_client.parser import text_string_to_metric_families
from worker_rig import GeoSetup, WorkerProcess, digest_of_tag, paused, push_announced, unique

from gdk_geo.node.settings import load_secondary
from gdk_geo.secondary.replicator import sync_once
from gdk_geo.secondary.results import RepositorySyncResult
from gdk_geo.secondary.snapshot import RepositoryStatus, StatusSnapshot
from gdk_geo.secondary.tracking import TrackingDB
from testkit.images import push_image
from testkit.net import wait_for

geo = worker_rig.geo  # the fixtures, with a setup of this module's own
workers = worker_rig.workers


# -- docker tests -----------------------------------------------------------------------------


@pytest.mark.docker
def test_a_push_replicates_through_the_event(geo: GeoSetup, workers) -> None:
    worker = workers()
    worker.start()
    wait_for("the event feed", lambda: worker.status().event_feed.connected, worker.logs)
    wait_for("the start-up backfill", lambda: worker.status().last_backfill_at, worker.logs)
    repo = unique("events/app")

    digest = push_image(geo.primary.url, repo, "v1")

    wait_for(
        "the tag on the secondary",
        lambda: digest_of_tag(geo.secondary.url, repo, "v1") == digest,
        worker.logs,
    )
    worker.wait_state(repo, "synced")
    # Backfill ran once, before the push (its interval is an hour): the event did this.
    assert any(event["repository"] == repo for event in geo.service.events())
    assert worker.stop() == 0
    assert "Traceback" not in worker.logs()


@pytest.mark.docker
def test_cursor_resumes_after_a_restart(geo: GeoSetup, workers) -> None:
    worker = workers()
    worker.start()
    old, new = unique("cursor/old"), unique("cursor/new")
    push_image(geo.primary.url, old, "v1")
    push_image(geo.primary.url, new, "v1")
    worker.wait_state(new, "synced")
    wait_for(
        "the cursor to reach the primary's last event",
        lambda: worker.status().cursor == geo.service.last_event_id(),
        worker.logs,
    )
    first_sync = worker.row(old).last_synced_at
    assert worker.stop() == 0, "SIGTERM is a clean shutdown"

    # While the worker is down: a new tag in an already synced repository. Backfill at start
    # leaves `new` alone (checked a moment ago, interval one hour): only the event can bring v2.
    v2 = push_image(geo.primary.url, new, "v2")
    worker.start()
    wait_for(
        "v2 on the secondary",
        lambda: digest_of_tag(geo.secondary.url, new, "v2") == v2,
        worker.logs,
    )
    worker.wait_state(new, "synced")
    assert worker.status().cursor == geo.service.last_event_id()
    assert worker.row(old).last_synced_at == first_sync, "old events were not replayed"
    assert "Traceback" not in worker.logs()


@pytest.mark.docker
def test_backfill_repairs_a_notification_lost_in_a_registry_restart(geo: GeoSetup, workers) -> None:
    worker = workers(backfill_interval=1)
    worker.start()
    repo = unique("backfill/app")

    geo.service.stop()  # the registry queues the notification in memory...
    try:
        digest = push_image(geo.primary.url, repo, "v1")
        geo.primary.restart()  # ...and loses it here
    finally:
        geo.service.start()

    wait_for(
        "backfill to bring the image",
        lambda: digest_of_tag(geo.secondary.url, repo, "v1") == digest,
        worker.logs,
    )
    assert not any(event["repository"] == repo for event in geo.service.events()), (
        "the notification really was lost, so backfill did this"
    )
    worker.wait_state(repo, "synced")


@pytest.mark.docker
def test_primary_registry_down_fails_with_backoff_then_syncs(geo: GeoSetup, workers) -> None:
    repo = unique("outage/app")
    digest = push_announced(geo, repo, "v1")
    worker = workers(retry=(0.2, 1.0))
    geo.primary.stop()
    try:
        worker.start()

        def failed_twice() -> RepositoryStatus | None:
            row = worker.row(repo)
            return row if row and row.state == "failed" and row.retry_count >= 2 else None

        row = wait_for("repeated failures", failed_twice, worker.logs)
        assert row.last_sync_failure, "the reason is recorded"
        assert row.retry_at > row.updated_at, "a failure waits before its retry"
        assert digest_of_tag(geo.secondary.url, repo, "v1") is None
    finally:
        geo.primary.start()

    worker.wait_state(repo, "synced")
    assert digest_of_tag(geo.secondary.url, repo, "v1") == digest
    row = worker.row(repo)
    assert (row.retry_count, row.last_sync_failure) == (0, None)


@pytest.mark.docker
def test_sigkill_mid_sync_is_recovered_at_restart(geo: GeoSetup, workers) -> None:
    repo = unique("crash/app")
    digest = push_announced(geo, repo, "v1")
    worker = workers()

    def in_flight() -> list[str]:
        return [row.repository for row in worker.status().repositories if row.state == "started"]

    with paused(geo.primary):  # every sync hangs on the frozen primary
        worker.start()
        started = wait_for("syncs in flight", in_flight, worker.logs)
        worker.kill()
    db = sqlite3.connect(worker.tracking_db)
    left = {
        name
        for (name,) in db.execute("SELECT repository FROM repositories WHERE state = 'started'")
    }
    db.close()
    assert left == set(started), "the killed worker left its rows mid-sync"

    worker.start()
    for name in [*started, repo]:
        worker.wait_state(name, "synced")
    assert digest_of_tag(geo.secondary.url, repo, "v1") == digest
    assert "re-queued" in worker.logs()


@pytest.mark.docker
def test_verification_sends_a_tampered_repository_back_to_sync(geo: GeoSetup, workers) -> None:
    repo = unique("verify/app")
    digest = push_image(geo.primary.url, repo, "v1")
    worker = workers(verification_interval=0.5)
    worker.start()
    worker.wait_state(repo, "synced")

    deleted = httpx.delete(f"{geo.secondary.url}/v2/{repo}/manifests/{digest}", timeout=5)
    assert deleted.status_code == 202

    wait_for(
        "verification to restore the tag",
        lambda: digest_of_tag(geo.secondary.url, repo, "v1") == digest,
        worker.logs,
    )
    wait_for(
        "a counted mismatch",
        lambda: worker.status().totals.verification_mismatches >= 1,
        worker.logs,
    )


@pytest.mark.docker
def test_status_json_metrics_and_admin_page_show_the_repositories(geo: GeoSetup, workers) -> None:
    worker = workers()
    worker.start()
    repo = unique("status/app")
    push_image(geo.primary.url, repo, "v1")
    worker.wait_state(repo, "synced")

    raw = worker.status_json()
    assert raw["node"] == "secondary"
    assert raw["lag"] == raw["primary_last_event_id"] - raw["cursor"]
    row = next(row for row in raw["repositories"] if row["repository"] == repo)
    assert {"repository", "state", "retry_count", "last_synced_at"} <= row.keys()
    status = StatusSnapshot.from_json(raw)
    assert status.replication_enabled is True
    assert status.counts["synced"] >= 1
    assert status.primary_last_event_id >= status.cursor >= 1
    assert status.last_event_age_seconds >= 0
    assert status.totals.blobs_copied >= 2

    health = httpx.get(f"{worker.url}/-/health").json()
    assert health == {
        "status": "ok",
        "node": "secondary",
        "cursor": health["cursor"],
        "replication_enabled": True,
    }
    metrics = {
        (sample.name, tuple(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(httpx.get(f"{worker.url}/-/metrics").text)
        for sample in family.samples
    }
    assert metrics["gdk_geo_repositories", (("state", "synced"),)] >= 1
    assert metrics["gdk_geo_bytes_copied_total", ()] == status.totals.bytes_copied

    page = httpx.get(f"{worker.url}/admin/geo")
    assert page.headers["content-type"].startswith("text/html")
    assert repo in page.text
    assert "/admin/geo/repositories.json" in page.text, "the page polls its JSON (issue 15)"
    assert "http://" not in page.text.replace(geo.primary.url, ""), "no external assets"


@pytest.mark.docker
def test_sync_once_syncs_named_and_all_repositories(geo: GeoSetup, tmp_path: Path) -> None:
    repo = unique("once/app")
    digest = push_image(geo.primary.url, repo, "v1")
    settings = load_secondary(WorkerProcess(geo, tmp_path / "secondary").write_config())

    seen: list[RepositorySyncResult] = []
    results = asyncio.run(sync_once(settings, [repo], progress=seen.append))
    assert [(r.repository, r.ok) for r in results] == [(repo, True)]
    assert seen == results
    assert digest_of_tag(geo.secondary.url, repo, "v1") == digest
    db = TrackingDB(settings.tracking_db_path)
    assert db.get(repo).state == "synced"
    db.close()

    everything = asyncio.run(sync_once(settings, all_=True))
    assert repo in {result.repository for result in everything}
    assert all(result.ok for result in everything), [r for r in everything if not r.ok]
