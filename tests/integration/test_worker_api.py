"""Resync and reverify through the worker API, against real registries and a real worker.

The registries, the primary's Geo service and the worker processes are `worker_rig`'s
(same fixtures, a setup of this module's own). The CLI's side is `gdk_geo.ops.worker_client`,
called here as `geo.sync` calls it, with the worker's settings read from its gitlab.yml.
"""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest
import worker_rig
from worker_rig import (
    NODE_TOKEN,
    GeoSetup,
    WorkerProcess,
    digest_of_tag,
    paused,
    push_announced,
    unique,
)

from gdk_geo.node.settings import load_secondary
from gdk_geo.ops import worker_client
from gdk_geo.registry.backoff import Backoff
from gdk_geo.secondary.tracking import TrackingDB
from testkit.images import push_image
from testkit.net import wait_for

pytestmark = pytest.mark.docker
geo = worker_rig.geo  # the fixtures, with a setup of this module's own
workers = worker_rig.workers
TOKEN = {"Authorization": f"Bearer {NODE_TOKEN}"}


def _pass(worker: WorkerProcess, kind: str, **selection: Any) -> list[dict[str, Any]]:
    """Every event of a pass, through the client `geo.sync` uses."""
    settings = load_secondary(worker.write_config())
    return list(worker_client.start_pass(settings, kind, selection))


def _listing(worker: WorkerProcess, **query: Any) -> dict[str, Any]:
    url = f"{worker.url}/api/v4/geo/container_repositories"
    response = httpx.get(url, params=query, headers=TOKEN, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def _failed_row(worker: WorkerProcess, repository: str, reason: str) -> None:
    """Record a failed sync an hour from its retry, as a long outage leaves one, and the
    event cursor past the primary's events, so only a requested resync syncs it."""
    db = TrackingDB(worker.tracking_db, backoff=Backoff(base=3600, cap=3600))
    try:
        db.apply_events([], worker.geo.service.last_event_id(), None)
        db.start([repository])
        db.finish_failure(repository, reason)
    finally:
        db.close()


def test_resync_named_unknown_and_failed(geo: GeoSetup, workers) -> None:
    repo = unique("api/failed")
    digest = push_announced(geo, repo, "v1")
    worker = workers()
    _failed_row(worker, repo, "primary registry unavailable")
    worker.start()
    assert worker.row(repo).state == "failed"
    assert [r["repository"] for r in _listing(worker, state="failed")["repositories"]] == [repo]

    events = _pass(worker, "resync", failed=True)
    assert [e["type"] for e in events] == ["planned", "result", "done"]
    assert events[1]["repository"] == repo and events[1]["ok"], events
    assert (events[-1]["synced"], events[-1]["failed"]) == (1, 0)
    assert worker.row(repo).state == "synced"
    assert digest_of_tag(geo.secondary.url, repo, "v1") == digest

    again = _pass(worker, "resync", repositories=[repo, "no/such-repository"])
    results = sorted((e for e in again if e["type"] == "result"), key=lambda e: e["position"])
    assert results[0]["repository"] == "no/such-repository" and not results[0]["ok"]
    assert "neither registry" in results[0]["reason"]
    assert results[1]["ok"] and results[1]["unchanged"] == 1, "a no-op resync"
    assert (again[-1]["synced"], again[-1]["failed"]) == (1, 1)


def test_reverify_finds_a_tampered_repository_and_filters_show_it(geo: GeoSetup, workers) -> None:
    clean, tampered = unique("api/clean"), unique("api/tampered")
    worker = workers()
    worker.start()
    for repo in (clean, tampered):
        push_announced(geo, repo, "v1")
        worker.wait_state(repo, "synced")
    push_image(geo.secondary.url, tampered, "extra")  # straight to the secondary

    events = _pass(worker, "reverify", repositories=[clean, tampered])
    diffs = {e["repository"]: e for e in events if e["type"] == "diff"}
    assert diffs[clean]["clean"] and not diffs[tampered]["clean"]
    assert list(diffs[tampered]["extra"]) == ["extra"]
    assert events[-1]["queued_for_sync"] == [tampered]

    failed = _listing(worker, verification_state="failed")["repositories"]
    assert [row["repository"] for row in failed] == [tampered]
    assert "only on the secondary: extra" in failed[0]["verification_failure"]
    assert [r["repository"] for r in _listing(worker, search=clean)["repositories"]] == [clean]
    # The queued resync deletes the stray tag; the next reverify of all passes.
    worker.wait_state(tampered, "synced")
    wait_for(
        "the stray tag to go", lambda: digest_of_tag(geo.secondary.url, tampered, "extra") is None
    )
    both = _pass(worker, "reverify", repositories=[clean, tampered])
    assert both[-1]["differ"] == 0, both[-1]
    counts = _listing(worker)["verification_counts"]
    assert counts["failed"] == 0 and counts["succeeded"] >= 2


def test_keyset_pages_cover_every_row_once(geo: GeoSetup, workers) -> None:
    worker = workers()
    names = [f"page/r{i:02d}" for i in range(7)]
    db = TrackingDB(worker.tracking_db, backoff=Backoff(base=3600, cap=3600))
    try:
        db.apply_events([], geo.service.last_event_id(), None)
        for name in names:
            db.start([name])
            db.finish_failure(name, "kept failed for the listing")
    finally:
        db.close()
    worker.start()
    seen: list[str] = []
    after = None
    while True:
        page = _listing(worker, state="failed", search="page/", per_page=3, after=after or "")
        seen += [row["repository"] for row in page["repositories"]]
        after = page["next_after"]
        if after is None:
            break
    assert seen == names


def test_a_resync_during_the_workers_sync_gets_a_sync_that_starts_after_it(
    geo: GeoSetup, workers
) -> None:
    """`geo.sync` of a repository the worker is syncing waits for that sync and is answered
    by a fresh one: the running sync listed both sides before the resync was
    asked for, so it cannot vouch for a change made just before the request."""
    repo = unique("api/followed")
    worker = workers()
    worker.start()
    with paused(geo.secondary):  # the worker's own sync of the push hangs on the secondary
        digest = push_announced(geo, repo, "v1")
        wait_for(
            "the worker's sync to start",
            lambda: getattr(worker.row(repo), "state", None) == "started",
        )
        events: list[dict[str, Any]] = []
        client = threading.Thread(
            target=lambda: events.extend(_pass(worker, "resync", repositories=[repo]))
        )
        client.start()
        wait_for(
            "the resync to queue behind it",
            lambda: f"a sync of {repo} is running: a fresh one follows it" in worker.logs(),
        )
    client.join(timeout=120)
    assert not client.is_alive()
    result = next(e for e in events if e["type"] == "result")
    row = worker.wait_state(repo, "synced")
    assert row.last_sync_failure is None
    logs = worker.logs()
    outcomes = logs.count(f"synced {repo}:") + logs.count(f"sync of {repo} failed")
    assert outcomes == 2, "the worker's sync, then the resync's: two syncs, each with an outcome"
    # The answer is the second sync's. The first pushed v1, unless the pause outlasted its
    # requests on a slow machine and it failed: then the second pushed it.
    expected = (0, 1) if f"sync of {repo} failed" not in logs else (1, 0)
    assert result["ok"] and (result["pushed"], result["unchanged"]) == expected, (result, logs)
    assert digest_of_tag(geo.secondary.url, repo, "v1") == digest
