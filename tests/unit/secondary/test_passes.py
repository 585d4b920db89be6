"""Resync and reverify passes in-process: the worker's app over registries that answer
the way a test needs (down, or empty), and a real tracking database.

What needs real registries (a sync that copies, a verification that finds a difference)
is `test_worker_api.py`'s; here is how a pass reports what stops it.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
from helpers import in_process_secondary_settings

from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.registry.errors import RegistryUnavailable, RepositoryNotFound
from gdk_geo.secondary.event_feed import EventFeed
from gdk_geo.secondary.replicator import Replicator
from gdk_geo.secondary.repository_index import Filters, RepositoryIndex
from gdk_geo.secondary.tracking import TrackingDB
from gdk_geo.secondary.verify import diff, queue_for_sync
from gdk_geo.secondary.web import worker_app
from gdk_geo.secondary.worker import Worker

TOKEN = "test-node-token"
PORT = 3002  # only the Host header: the app is called in-process, nothing listens


class DownRegistry:
    """A registry client whose registry does not answer."""

    base_url = "http://127.0.0.1:9"

    async def list_tags(self, repository: str) -> list[str]:
        raise RegistryUnavailable("connection refused")

    async def catalog(self) -> list[str]:
        raise RegistryUnavailable("connection refused")


class EmptyRegistry:
    """A registry client whose registry has no repositories at all."""

    base_url = "http://127.0.0.1:8"

    async def list_tags(self, repository: str) -> list[str]:
        raise RepositoryNotFound(f"{repository}: NAME_UNKNOWN", status=404, code="NAME_UNKNOWN")

    async def head_manifests(self, repository: str, tags: Any, concurrency: int = 8) -> dict:
        return {}

    async def catalog(self) -> list[str]:
        return []


def settings(root: Path) -> SecondaryWorkerSettings:
    return in_process_secondary_settings(
        root,
        port=PORT,
        node_token=TOKEN,
        registry_api_url=EmptyRegistry.base_url,
        primary_api_url=DownRegistry.base_url,
    )


def pass_events(root: Path, source: Any, kind: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """Start a pass through the worker API and read its events to the `done` line."""
    config = settings(root)

    async def scenario() -> list[dict[str, Any]]:
        db = TrackingDB(config.tracking_db_path)
        try:
            replicator = Replicator(config, db, source, EmptyRegistry())  # type: ignore[arg-type]
            worker = Worker(config, replicator, EventFeed(config.primary_geo_url, TOKEN))
            transport = httpx.ASGITransport(app=worker_app(config, worker))
            headers = {"Authorization": f"Bearer {TOKEN}"}
            async with httpx.AsyncClient(
                transport=transport, base_url=f"http://127.0.0.1:{PORT}", headers=headers
            ) as client:
                url = f"/api/v4/geo/container_repositories/{kind}"
                started = await client.post(url, json=body)
                assert started.status_code == 202, started.text
                events = await client.get(started.json()["events_url"])
            return [json.loads(line) for line in events.text.splitlines()]
        finally:
            db.close()

    return asyncio.run(scenario())


def test_a_primary_unreadable_mid_reverify_is_reported_as_such(tmp_path: Path) -> None:
    """The comparisons run in a task group: its exception group was reported as an
    internal error, where the CLI prints the side, its URL and the fix."""
    events = pass_events(tmp_path, DownRegistry(), "reverify", {"repositories": ["a/one", "a/two"]})
    done = events[-1]
    assert done["type"] == "done"
    assert (done["error"], done["side"]) == ("unreadable", "primary"), done
    assert DownRegistry.base_url in done["line"] and "connection refused" in done["line"]


def test_a_resync_says_how_many_first_even_when_names_are_refused(tmp_path: Path) -> None:
    """`geo.sync` sizes its progress bar from the first event: the refused names' results
    came before `planned`, so the bar of `geo.sync --repo typo` had no total."""
    events = pass_events(tmp_path, EmptyRegistry(), "resync", {"repositories": ["no/such"]})
    assert [event["type"] for event in events] == ["planned", "result", "done"]
    assert events[0]["total"] == 1
    assert events[1]["position"] == 0 and "neither registry" in events[1]["reason"]
    assert (events[2]["synced"], events[2]["failed"]) == (0, 1)


def test_geo_verify_in_process_records_the_failed_verification(tmp_path: Path) -> None:
    """`geo.verify` without the worker queued what differs but left no verification state,
    so the admin page's "failed" filter and "Reverify all failed" never found it."""
    config = settings(tmp_path)
    tampered = diff("group/app", {"v1": "sha256:" + "1" * 64}, {"rogue": "sha256:" + "2" * 64})
    assert queue_for_sync(config, [tampered]) == ["group/app"]
    db, index = TrackingDB(config.tracking_db_path), RepositoryIndex(config.tracking_db_path)
    try:
        assert db.get("group/app").state == "pending"
        [row] = index.page(Filters(verification_state="failed")).rows
        assert row["repository"] == "group/app"
        assert row["verification_failure"] == "missing: v1; only on the secondary: rogue"
    finally:
        index.close()
        db.close()
