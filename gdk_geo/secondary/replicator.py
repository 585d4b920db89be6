"""One repository sync, recorded: what the worker's scheduler and `invoke geo.sync` share.

`Replicator.run` takes a repository the tracking database already marked started, runs
`gdk_geo.secondary.sync.sync_repository` on it and records the outcome (synced, or failed with its
reason and backoff). `sync_once` is the blocking pass behind `invoke geo.sync`, recorded
the same way, so the status page tells the truth whichever of the two did the work.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.reference import check_repository
from gdk_geo.secondary.blob_locations import BlobLocations
from gdk_geo.secondary.bounded import run_bounded
from gdk_geo.secondary.clients import registry_clients
from gdk_geo.secondary.event_feed import FeedEvent
from gdk_geo.secondary.results import RepositorySyncResult, Totals, failure_line
from gdk_geo.secondary.selection import Selection, check_replication_enabled, plan_sync
from gdk_geo.secondary.sync import SyncOptions, sync_repository
from gdk_geo.secondary.tracking import TrackingDB

logger = logging.getLogger("gdk_geo.worker")

Progress = Callable[[RepositorySyncResult], None]


def failure_reason(result: RepositorySyncResult) -> str:
    """One line for `last_sync_failure`: the repository error, or the tags that failed."""
    if result.error:
        text = result.error
    else:
        problems = {**result.failed_tags, **result.stale_tags}
        text = "; ".join(f"{tag}: {why}" for tag, why in sorted(problems.items()))
    return failure_line(text or "not every tag synced")


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
    *,
    failed: bool = False,
) -> list[RepositorySyncResult]:
    """One blocking sync pass, recorded in the tracking database like the worker's.

    `repos`: exactly these repositories. `all_`: every repository in the primary's catalog.
    `failed`: the repositories whose last sync failed. None of them: what the worker would
    do next. The ladder is `gdk_geo.secondary.selection.plan_sync`, which the worker's
    resync asks too. `progress` is called with each result as it finishes. Safe while the
    worker runs: a sync is idempotent, and both record into the same database.
    """
    check_replication_enabled(settings)  # before the file and the clients: one clear line
    names = tuple(_checked_name(name) for name in repos or [])
    selection = Selection(names, all=all_, failed=failed)
    db = TrackingDB(settings.tracking_db_path)
    try:
        async with registry_clients(settings) as (source, target):
            replicator = Replicator(settings, db, source, target)
            plan = await plan_sync(settings, db, source, target, selection)
            if not plan.claimed:
                db.start(plan.names)

            async def one(name: str) -> RepositorySyncResult:
                result = await replicator.run(name)
                if progress is not None:
                    progress(result)
                return result

            limit = settings.max_concurrent_repositories
            return plan.unknown + await run_bounded(one, plan.names, limit)
    finally:
        db.close()


def _checked_name(name: str) -> str:
    try:
        return check_repository(name)
    except ValueError:
        raise GdkGeoError(
            f"{name!r} is not a repository name",
            fix="use the path part of the image, e.g. `group/app` for localhost:5000/group/app",
        ) from None
