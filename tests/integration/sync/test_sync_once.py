"""`sync_once` (what `invoke geo.sync` runs) against real registries: what it records."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from helpers import in_process_secondary_settings

from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.registry.client import RegistryClient
from gdk_geo.secondary.clients import registry_clients
from gdk_geo.secondary.event_feed import EventFeed
from gdk_geo.secondary.replicator import Replicator, sync_once
from gdk_geo.secondary.tracking import TrackingDB
from gdk_geo.secondary.verify import compare_repository, queue_for_sync, verify_registries
from gdk_geo.secondary.worker import Worker
from testkit.images import Pusher, make_image

pytestmark = pytest.mark.docker


def worker_settings(registries, root: Path) -> SecondaryWorkerSettings:
    """A secondary's settings for the plain-HTTP test pair (no worker process runs; sync_once
    never reads events)."""
    return in_process_secondary_settings(
        root, registry_api_url=registries.secondary, primary_api_url=registries.primary
    )


def test_a_repository_neither_registry_knows_is_a_failure_and_not_recorded(
    registries, tmp_path: Path
) -> None:
    """Issue 13 #18: `geo.sync --repo does/not/exist` printed ✓ and added a "synced" row."""
    settings = worker_settings(registries, tmp_path)
    name = f"does/not/exist-{uuid.uuid4().hex[:8]}"
    [result] = asyncio.run(sync_once(settings, [name]))
    assert not result.ok
    assert result.error is not None and name in result.error
    db = TrackingDB(settings.tracking_db_path)
    try:
        assert db.get(name) is None
    finally:
        db.close()


def test_sync_failed_syncs_what_failed_and_nothing_else(registries, tmp_path: Path) -> None:
    """`failed=True` is the ladder's "failed" rung (`plan_sync`), as the worker's resync
    pass has it, so `geo.sync --failed` in-process need not read the rows itself."""
    settings = worker_settings(registries, tmp_path)
    broken, fine = _names()

    async def scenario() -> list[str]:
        async with Pusher(registries.primary) as primary:
            for repo in (broken, fine):
                await primary.image(repo, "v1", make_image())
        db = TrackingDB(settings.tracking_db_path)
        try:
            db.start([broken])
            db.finish_failure(broken, "primary registry unavailable")
            db.mark_pending(fine)  # due, but not failed
        finally:
            db.close()
        return [r.repository for r in await sync_once(settings, failed=True) if r.ok]

    assert asyncio.run(scenario()) == [broken]


async def _push_straight_to_the_secondary(registries, settings, repo: str, stray: str) -> None:
    """`repo` synced, then a tag of it and a whole repository pushed to the secondary."""
    async with Pusher(registries.primary) as primary:
        await primary.image(repo, "v1", make_image())
    assert all(r.ok for r in await sync_once(settings, [repo]))
    async with Pusher(registries.secondary) as secondary:
        await secondary.image(repo, "rogue", make_image())
        await secondary.image(stray, "v1", make_image())


async def _differing(registries, *repos: str) -> list[str]:
    """Which of `repos` differ between the test pair, by the verification's comparison."""
    async with (
        RegistryClient(registries.primary) as source,
        RegistryClient(registries.secondary) as target,
    ):
        diffs = [await compare_repository(source, target, repo) for repo in repos]
    return [d.repository for d in diffs if not d.clean]


def _names() -> tuple[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return f"straight/app-{suffix}", f"straight/stray-{suffix}"


def test_sync_all_repairs_what_was_pushed_straight_to_the_secondary(
    registries, tmp_path: Path
) -> None:
    """Issue 13 #20: `--all` synced only the primary's catalog, so a repository only the
    secondary has was never visited."""
    settings = worker_settings(registries, tmp_path)
    repo, stray = _names()

    async def scenario() -> list[str]:
        await _push_straight_to_the_secondary(registries, settings, repo, stray)
        assert await _differing(registries, repo, stray) == [repo, stray]
        results = await sync_once(settings, all_=True)
        assert {repo, stray} <= {r.repository for r in results}
        return await _differing(registries, repo, stray)

    assert asyncio.run(scenario()) == []


def test_verify_queues_what_differs_and_the_next_pass_repairs_it(
    registries, tmp_path: Path
) -> None:
    """Issue 13 #20: `geo.verify` reported differences and queued nothing. Here verify's
    queue is worked off by `sync_once` with neither flag, which claims what is due exactly
    as the worker's scheduler does."""
    settings = worker_settings(registries, tmp_path)
    repo, stray = _names()

    async def scenario() -> tuple[list[str], list[str]]:
        await _push_straight_to_the_secondary(registries, settings, repo, stray)
        found = [d for d in await verify_registries(settings) if d.repository in (repo, stray)]
        queued = queue_for_sync(settings, found)
        await sync_once(settings)
        return queued, await _differing(registries, repo, stray)

    queued, left = asyncio.run(scenario())
    assert queued == [repo, stray]
    assert left == []


def test_worker_verification_queues_a_repository_only_the_secondary_has(
    registries, tmp_path: Path
) -> None:
    """Issue 13 #20: the worker verified tracked repositories only; one pushed straight to
    the secondary was never compared, so never repaired."""
    settings = worker_settings(registries, tmp_path)
    repo, stray = _names()

    async def scenario() -> list[str]:
        await _push_straight_to_the_secondary(registries, settings, repo, stray)
        db = TrackingDB(settings.tracking_db_path)
        try:
            async with registry_clients(settings) as (source, target):
                feed = EventFeed(settings.primary_geo_url, settings.node_token)
                async with feed:
                    worker = Worker(settings, Replicator(settings, db, source, target), feed)
                    assert await worker.verify_once() >= 2
            return [name for name in (repo, stray) if db.get(name).state == "pending"]
        finally:
            db.close()

    assert asyncio.run(scenario()) == [repo, stray]
