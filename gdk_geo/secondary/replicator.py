"""One repository sync, recorded: what the worker's scheduler and `invoke geo.sync` share.

`Replicator.run` takes a repository the tracking database already marked started, runs
`gdk_geo.secondary.sync.sync_repository` on it and records the outcome (synced, or failed with its
reason and backoff). `sync_once` is the blocking pass behind `invoke geo.sync`, recorded
the same way, so the status page tells the truth whichever of the two did the work.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Collection, Sequence

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.errors import RegistryError, RepositoryNotFound
from gdk_geo.registry.reference import check_repository
from gdk_geo.secondary.blob_locations import BlobLocations
from gdk_geo.secondary.clients import registry_clients
from gdk_geo.secondary.event_feed import FeedEvent
from gdk_geo.secondary.results import RepositorySyncResult, Totals
from gdk_geo.secondary.sync import SyncOptions, sync_repository
from gdk_geo.secondary.tracking import TrackingDB

logger = logging.getLogger("gdk_geo.worker")

MAX_FAILURE_TEXT = 1000

Progress = Callable[[RepositorySyncResult], None]


def failure_reason(result: RepositorySyncResult) -> str:
    """One line for `last_sync_failure`: the repository error, or the tags that failed."""
    if result.error:
        text = result.error
    else:
        problems = {**result.failed_tags, **result.stale_tags}
        text = "; ".join(f"{tag}: {why}" for tag, why in sorted(problems.items()))
    text = " ".join((text or "not every tag synced").split())
    return text if len(text) <= MAX_FAILURE_TEXT else text[: MAX_FAILURE_TEXT - 3] + "..."


class Replicator:
    """Syncs claimed repositories and records each outcome in the tracking database.

    Shared by the worker's scheduler and `sync_once`, so both update tracking the same way.
    Tag hints from push events wait here until their repository's next sync, which uses
    them once: a hinted tag the primary never lists fails that sync, and keeping the hint
    would fail every retry too (a push quickly followed by a delete). The retry does a
    full listing instead, and verification catches anything a race still hides.

    A repository that was in sync and has only had pushes since (hinted tags, no delete
    event) gets an incremental sync: just the hinted tags, no listing of both sides. That
    keeps a push's latency independent of how many tags the repository has; backfill and
    verification still compare everything on their own schedule.
    """

    def __init__(
        self,
        settings: SecondaryWorkerSettings,
        db: TrackingDB,
        source: RegistryClient,
        target: RegistryClient,
    ) -> None:
        self.settings = settings
        self.db = db
        self.source = source
        self.target = target
        self.blob_locations = BlobLocations()
        self.sync_options = SyncOptions(max_concurrent_blobs=settings.max_concurrent_blobs)
        self.totals = Totals()
        self.hints: dict[str, set[str]] = {}
        self.needs_full_pass: set[str] = set()  # a delete event arrived since the last pass

    def note_event(self, event: FeedEvent) -> None:
        """Remember a pushed tag for the next sync; forget it again when it is deleted.

        Anything but a push of a tag (a delete, a push by digest) asks for a full pass.
        """
        hints = self.hints.setdefault(event.repository, set())
        if event.action != "updated" or not event.tag:
            self.needs_full_pass.add(event.repository)
        if event.action == "updated" and event.tag:
            hints.add(event.tag)
        elif event.tag:
            hints.discard(event.tag)
        else:  # a delete by digest: any hinted tag may have gone with it
            hints.clear()
        if not hints:
            del self.hints[event.repository]

    async def run(self, repository: str) -> RepositorySyncResult:
        """Sync one repository already marked started, and record how it went."""
        hints = self.hints.pop(repository, set())
        incremental = (
            bool(hints) and repository not in self.needs_full_pass and self._was_in_sync(repository)
        )
        self.needs_full_pass.discard(repository)
        result = await self._sync(repository, hints, incremental)
        self.totals.add(result)
        if result.ok:
            # The checksum is the verification's to record: computing it here would cost
            # another listing and a HEAD per tag on every sync.
            state = self.db.finish_success(repository, None)
            logger.info("synced %s: %s%s", repository, _summary(result), _requeued(state))
        else:
            reason = failure_reason(result)
            retry_at = self.db.finish_failure(repository, reason)
            logger.warning(
                "sync of %s failed (retry in %.1fs): %s",
                repository,
                max(0.0, retry_at - time.time()),
                reason,
            )
        return result

    def _was_in_sync(self, repository: str) -> bool:
        """True when the last sync of `repository` succeeded (so only new pushes differ)."""
        row = self.db.get(repository)
        return row is not None and row.last_synced_at is not None and not row.last_sync_failure

    async def _sync(
        self, repository: str, hints: set[str], incremental: bool = False
    ) -> RepositorySyncResult:
        try:
            return await sync_repository(
                self.source,
                self.target,
                repository,
                blob_locations=self.blob_locations,
                tags_hint=sorted(hints),
                hinted_only=incremental,
                options=self.sync_options,
            )
        except Exception as exc:  # a bug in one sync must not stop the others
            logger.exception("sync of %s crashed", repository)
            return RepositorySyncResult(repository, error=f"internal error: {exc!r}")


def _summary(result: RepositorySyncResult) -> str:
    return (
        f"{len(result.synced_tags)} tag(s) pushed, {len(result.skipped_tags)} unchanged, "
        f"{len(result.deleted_tags)} deleted; blobs {result.blobs_copied} copied, "
        f"{result.blobs_mounted} mounted, {result.blobs_present} present"
    )


def _requeued(state: str) -> str:
    return " (an event arrived meanwhile: queued again)" if state == "pending" else ""


async def sync_once(
    settings: SecondaryWorkerSettings,
    repos: list[str] | None = None,
    all_: bool = False,
    progress: Progress | None = None,
) -> list[RepositorySyncResult]:
    """One blocking sync pass, recorded in the tracking database like the worker's.

    `repos`: exactly these repositories. `all_`: every repository in the primary's catalog.
    Neither: what the worker would do next, i.e. what is due plus what a backfill would
    queue. `progress` is called with each result as it finishes. Safe while the worker runs:
    a sync is idempotent, and both record into the same database.
    """
    if not settings.replication_enabled:
        raise GdkGeoError(
            "registry replication is disabled on the secondary",
            fix="set geo.secondary.registry_replication.enabled: true in gdk.yml, then "
            "`invoke geo.restart`",
        )
    names = [_checked_name(name) for name in repos or []]
    db = TrackingDB(settings.tracking_db_path)
    try:
        async with registry_clients(settings) as (source, target):
            replicator = Replicator(settings, db, source, target)
            unknown: list[RepositorySyncResult] = []
            if names:
                unknown = await unknown_repositories(source, target, names, db)
                names = [name for name in names if name not in {r.repository for r in unknown}]
            if all_ or names:
                names = names or await _every_repository(source, target)
                db.start(names)
            elif not unknown:
                db.mark_many_pending(
                    db.needs_backfill(await _catalog(source), settings.backfill_interval)
                )
                names = db.claim_due(sys.maxsize)
            return unknown + await _run_bounded(replicator, names, settings, progress)
    finally:
        db.close()


async def _run_bounded(
    replicator: Replicator,
    names: Sequence[str],
    settings: SecondaryWorkerSettings,
    progress: Progress | None,
) -> list[RepositorySyncResult]:
    limit = asyncio.Semaphore(max(1, settings.max_concurrent_repositories))

    async def one(name: str) -> RepositorySyncResult:
        async with limit:
            result = await replicator.run(name)
        if progress is not None:
            progress(result)
        return result

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(name)) for name in names]
    return [task.result() for task in tasks]


async def unknown_repositories(
    source: RegistryClient, target: RegistryClient, names: Sequence[str], db: TrackingDB
) -> list[RepositorySyncResult]:
    """A failed result for each named repository neither registry has heard of.

    Syncing such a name "succeeds" with nothing to copy, and recorded it as synced: a
    typo in `geo.sync --repo` printed ✓ and left a phantom row on the status page. A name
    only the secondary knows is a real sync (its deletion), so it is left alone, and so is
    a name the tracking database has a row for: it was in a catalog once, and its sync is
    what settles it. The others are asked about all at once, not one round trip each.
    """

    async def known(client: RegistryClient, name: str) -> bool:
        try:
            await client.list_tags(name)
        except RepositoryNotFound:
            return False
        except RegistryError:
            return True  # could not ask: the sync itself fails and records why
        return True

    async def unknown(name: str) -> bool:
        return not await known(source, name) and not await known(target, name)

    untracked = [name for name in names if db.get(name) is None]
    verdicts = await asyncio.gather(*(unknown(name) for name in untracked))
    error = "neither registry has a repository named {} (check its spelling)"
    return [
        RepositorySyncResult(name, error=error.format(name)).finish()
        for name, is_unknown in zip(untracked, verdicts, strict=True)
        if is_unknown
    ]


async def secondary_only(primary: Collection[str], target: RegistryClient) -> list[str]:
    """Repositories with tags on the secondary that the primary's catalog (`primary`) lacks.

    Someone pushed them straight to the secondary. Backfill reads only the primary's
    catalog, so without this nothing would ever sync (here: delete) them. A name the
    secondary lists without tags is what a replicated deletion leaves: nothing to do.
    """
    known = set(primary)
    candidates = [name for name in await target.catalog() if name not in known]
    found = []
    for name in candidates:
        try:
            if await target.list_tags(name):
                found.append(name)
        except RepositoryNotFound:
            continue
    return found


def _checked_name(name: str) -> str:
    try:
        return check_repository(name)
    except ValueError:
        raise GdkGeoError(
            f"{name!r} is not a repository name",
            fix="use the path part of the image, e.g. `group/app` for localhost:5000/group/app",
        ) from None


async def _catalog(source: RegistryClient) -> list[str]:
    try:
        return await source.catalog()
    except RegistryError as exc:
        raise GdkGeoError(
            f"cannot list the primary registry's catalog: {exc}",
            fix="check that the primary registry runs (`invoke geo.status`)",
        ) from None


async def _every_repository(source: RegistryClient, target: RegistryClient) -> list[str]:
    """What `geo.sync --all` syncs: the primary's catalog, and what only the secondary has."""
    names = await _catalog(source)
    try:
        return names + await secondary_only(names, target)
    except RegistryError as exc:
        raise GdkGeoError(
            f"cannot list the secondary registry's catalog: {exc}",
            fix="check that the secondary registry runs (`invoke geo.status`)",
        ) from None
