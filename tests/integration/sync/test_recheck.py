"""Backfill's re-check of synced repositories, by the worker's own loops, against real
registries.

Backfill used to mark every synced repository not checked for `backfill_interval` pending,
so a secondary fully in sync showed hundreds pending and a synced bar at 30%. Now a
repository whose content matches stays synced while it is re-checked, and the status
counts the re-checks due; a re-check that finds a difference sends it to sync as before.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from helpers import in_process_secondary_settings

from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.secondary.event_feed import EventFeed
from gdk_geo.secondary.replicator import Replicator, registry_clients, sync_once
from gdk_geo.secondary.status_page import render_metrics
from gdk_geo.secondary.tracking import TrackingDB
from gdk_geo.secondary.worker import Worker
from testkit.images import Pusher, make_image

pytestmark = pytest.mark.docker
T = TypeVar("T")


def worker_settings(registries, root: Path) -> SecondaryWorkerSettings:
    """Backfill's interval at zero: every synced repository is due for a re-check at once."""
    return in_process_secondary_settings(
        root,
        registry_api_url=registries.secondary,
        primary_api_url=registries.primary,
        backfill_interval=0.0,
    )


def with_worker(settings: SecondaryWorkerSettings, scenario: Callable[[Worker], Awaitable[T]]) -> T:
    """`scenario` with an in-process worker (its loops not started) on real registries."""

    async def run() -> T:
        db = TrackingDB(settings.tracking_db_path)
        try:
            async with (
                registry_clients(settings) as (source, target),
                EventFeed(settings.primary_geo_url, settings.node_token) as feed,
            ):
                return await scenario(
                    Worker(settings, Replicator(settings, db, source, target), feed)
                )
        finally:
            db.close()

    return asyncio.run(run())


async def synced(registries, settings: SecondaryWorkerSettings, *repos: str) -> None:
    async with Pusher(registries.primary) as primary:
        for repo in repos:
            await primary.image(repo, "v1", make_image())
    assert all(result.ok for result in await sync_once(settings, list(repos)))


def names(count: int) -> list[str]:
    suffix = uuid.uuid4().hex[:8]
    return [f"recheck/app{n}-{suffix}" for n in range(count)]


def test_backfill_over_synced_repositories_leaves_them_synced(registries, tmp_path: Path) -> None:
    settings = worker_settings(registries, tmp_path)
    repos = names(2)

    async def scenario(worker: Worker) -> None:
        await synced(registries, settings, *repos)
        assert await worker.backfill_once()
        assert [worker.db.get(repo).state for repo in repos] == ["synced", "synced"]
        status = worker.status("none")
        assert status.rechecks_due == 2 and status.counts["synced"] == 2
        assert status.to_json()["rechecks_due"] == 2
        assert "gdk_geo_rechecks_due 2.0" in render_metrics(status)

        assert await worker.recheck_due() == 0, "nothing differs"
        assert [worker.db.get(repo).state for repo in repos] == ["synced", "synced"]
        assert worker.status("none").rechecks_due == 0
        assert worker.index.verification_counts()["succeeded"] == 2, "a re-check verifies"

    with_worker(settings, scenario)


def test_a_difference_a_recheck_finds_is_synced(registries, tmp_path: Path) -> None:
    settings = worker_settings(registries, tmp_path)
    clean, tampered = names(2)

    async def scenario(worker: Worker) -> None:
        await synced(registries, settings, clean, tampered)
        async with Pusher(registries.secondary) as secondary:
            await secondary.image(tampered, "rogue", make_image())  # straight to the secondary
        # Only these two: backfill_once would queue every repository of the shared registries.
        assert worker.db.backfill([clean, tampered], older_than=0).rechecks == [clean, tampered]
        assert await worker.recheck_due() == 1
        assert (worker.db.get(clean).state, worker.db.get(tampered).state) == ("synced", "pending")
        assert worker.replicator.totals.verification_mismatches == 1

        assert worker.db.claim_due(10) == [tampered], "the scheduler's next claim"
        assert (await worker.in_flight.run_claimed(tampered)).deleted_tags == ["rogue"]
        assert await worker.replicator.target.list_tags(tampered) == ["v1"]
        assert (worker.db.get(tampered).state, worker.status("none").rechecks_due) == ("synced", 0)

    with_worker(settings, scenario)
