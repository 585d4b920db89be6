"""The secondary's Geo worker: GitLab's `Geo::ContainerRepositoryServiceWorker`, done better.

Four loops share one tracking database (`gdk_geo.secondary.tracking`) and one asyncio event loop:

* the event follower long-polls the primary's event API, marks each event's repository
  pending and advances the cursor in the same transaction, then wakes the scheduler, so a
  push is replicated within milliseconds of the primary hearing of it;
* the scheduler syncs due repositories (`gdk_geo.secondary.sync`), at most
  `max_concurrent_repositories` at once, and records success or failure with backoff;
* the backfill lists the primary's catalog every `backfill_interval` (and at start) and
  queues what was never synced or is due for a retry: a notification the registry dropped
  while restarting is repaired here. A synced repository not checked for an interval is
  re-checked by a verification and stays synced unless that finds a difference;
* the verification compares tag→digest checksums of synced repositories on both sides
  every `verification_interval`; a mismatch goes back to sync.

Events make replication fast; backfill and verification make it complete. The HTTP side
(`gdk_geo.secondary.web`) runs in the same loop; one sync and its bookkeeping live in
`gdk_geo.secondary.replicator`, the event API client in `gdk_geo.secondary.event_feed`, and
the process around it all (`python -m gdk_geo.secondary`) in `gdk_geo.secondary.process`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace

from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.registry.backoff import Backoff
from gdk_geo.registry.errors import RegistryError
from gdk_geo.secondary.bounded import run_bounded
from gdk_geo.secondary.event_feed import EventFeed, EventFeedError, EventPage, restarted
from gdk_geo.secondary.in_flight import InFlight
from gdk_geo.secondary.replicator import Replicator
from gdk_geo.secondary.repository_index import RepositoryIndex
from gdk_geo.secondary.results import Totals
from gdk_geo.secondary.selection import secondary_only
from gdk_geo.secondary.snapshot import FeedState, Rows, StatusSnapshot
from gdk_geo.secondary.tracking import TrackedRepository, TrackingDB
from gdk_geo.secondary.verify import verify_and_record

__all__ = ["Activity", "Worker", "status_snapshot"]

# Named, not __name__: run with -m, this module is `__main__`.
logger = logging.getLogger("gdk_geo.worker")

IDLE_LOOK_SECONDS = 30.0  # the scheduler looks at the database at least this often
BACKFILL_RETRY_SECONDS = 15.0  # a failed catalog listing is retried sooner than an interval
FEED_RECONNECT = Backoff(base=0.5, cap=30.0)


@dataclass
class Activity:
    """What the loops learnt that the database does not hold (shown on the status page)."""

    primary_last_event_id: int | None = None
    feed_connected: bool = False
    feed_error: str | None = None
    last_backfill_at: float | None = None
    backfill_error: str | None = None
    last_verification_at: float | None = None


class Worker:
    """The follower, scheduler, backfill and verification loops around one `Replicator`."""

    def __init__(
        self, settings: SecondaryWorkerSettings, replicator: Replicator, feed: EventFeed
    ) -> None:
        self.settings = settings
        self.replicator = replicator
        self.db = replicator.db
        self.feed = feed
        self.activity = Activity()
        self.in_flight = InFlight(replicator)  # every sync goes through it: a resync joins
        self.index = RepositoryIndex(self.db.path)
        self._wake = asyncio.Event()
        self._backfill_now = asyncio.Event()
        self._running = 0

    async def run(self) -> None:
        """Run every loop until cancelled; a tracking database failure ends them all."""
        if not self.settings.replication_enabled:
            logger.warning("geo.registry_replication.enabled is false: serving status only")
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as group:
            group.create_task(self.follow_events())
            group.create_task(self.schedule())
            group.create_task(self.backfill_forever())
            group.create_task(self.verify_forever())

    # -- events ----------------------------------------------------------------------------

    async def follow_events(self) -> None:
        """Long-poll the event API forever, reconnecting with backoff while it is down."""
        failures = 0
        while True:
            # The first poll after (re)connecting returns at once, so the status page knows
            # the feed is up and the cursor catches up before the long-polls begin.
            wait = None if self.activity.feed_connected else 0
            try:
                page = await self.feed.next_page(self.db.cursor(), wait=wait)
            except EventFeedError as exc:
                self._feed_down(str(exc))
                await asyncio.sleep(FEED_RECONNECT.delay(failures))
                failures += 1
                continue
            failures = 0
            self._feed_up()
            self.apply(page)

    def apply(self, page: EventPage) -> None:
        """Queue the page's repositories and move the cursor past it (one transaction)."""
        self.activity.primary_last_event_id = page.primary_last_event_id
        cursor = self.db.cursor()
        why = restarted(page, cursor, self.db.cursor_log())
        if why:
            logger.warning("%s: reading it from the start and running a backfill", why)
            self.db.apply_events([], 0, None, log_id=page.log_id)
            self._backfill_now.set()
            return
        if page.last_seen_id <= cursor:
            return
        for event in page.events:
            self.replicator.note_event(event)
        repositories = [event.repository for event in page.events]
        self.db.apply_events(
            repositories, page.last_seen_id, page.last_created_at, log_id=page.log_id
        )
        self._wake.set()

    def _feed_down(self, reason: str) -> None:
        if reason != self.activity.feed_error:
            logger.warning("cannot read the primary's Geo events: %s", reason)
        self.activity.feed_connected, self.activity.feed_error = False, reason

    def _feed_up(self) -> None:
        if not self.activity.feed_connected:
            logger.info("following the primary's Geo events from %d", self.db.cursor())
        self.activity.feed_connected, self.activity.feed_error = True, None

    # -- scheduling ------------------------------------------------------------------------

    async def schedule(self) -> None:
        """Start due syncs whenever a slot is free and there is news (an event, a finish)."""
        limit = max(1, self.settings.max_concurrent_repositories)
        async with asyncio.TaskGroup() as group:
            while True:
                self._wake.clear()  # before claiming: a wake during the claim is not lost
                for repository in self.db.claim_due(limit - self._running):
                    self._running += 1
                    group.create_task(self._sync_claimed(repository))
                await self._sleep_until_news(limit)

    async def _sync_claimed(self, repository: str) -> None:
        try:
            await self.in_flight.run_claimed(repository)
        finally:
            self._running -= 1
            self._wake.set()

    def wake(self) -> None:
        """Have the scheduler look at the database now (a requested pass queued work)."""
        self._wake.set()

    async def _sleep_until_news(self, limit: int) -> None:
        timeout = IDLE_LOOK_SECONDS
        next_retry = self.db.next_retry_at()
        if next_retry is not None and self._running < limit:
            timeout = min(timeout, max(0.01, next_retry - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    # -- backfill and verification ---------------------------------------------------------

    async def backfill_forever(self) -> None:
        """Backfill now and every interval (sooner after a failure or a log restart), each
        followed by the re-checks it found due; the interval counts from their end, so a
        short one cannot pile re-checks up faster than they run."""
        while True:
            done = await self.backfill_once()
            if done:  # a primary that cannot list its catalog would fail every re-check too
                await self.recheck_due()
            pause = self.settings.backfill_interval
            if not done:
                pause = min(pause, BACKFILL_RETRY_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._backfill_now.wait(), pause)
            self._backfill_now.clear()

    async def backfill_once(self) -> bool:
        """Queue what the primary's catalog has and we lack; flag re-checks of the synced
        repositories not checked lately (`TrackingDB.backfill`). False when the catalog
        could not be read."""
        try:
            catalog = await self.replicator.source.catalog()
        except RegistryError as exc:
            logger.warning("backfill: cannot list the primary's catalog: %s", exc)
            self.activity.backfill_error = str(exc)
            return False
        found = self.db.backfill(catalog, older_than=self.settings.backfill_interval)
        if found.queued:
            self._wake.set()
            logger.info("backfill: queued %d of %d repositories", len(found.queued), len(catalog))
        if found.rechecks:
            logger.info("backfill: %d synced repositories due for a re-check", len(found.rechecks))
        self.activity.last_backfill_at, self.activity.backfill_error = time.time(), None
        return True

    async def recheck_due(self) -> int:
        """Re-check the synced repositories backfill flagged; how many differed.

        A re-check is a verification, as GitLab re-checks a synced repository: the row
        stays synced while it runs, a match clears the flag, and only a difference makes
        it pending, for the scheduler to sync (issue 25 #16). One that cannot be read
        stays flagged for the next backfill.
        """
        mismatches = await self.verify_each(self.db.repositories_due_for_recheck())
        self.replicator.totals.verification_mismatches += mismatches
        return mismatches

    async def verify_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.verification_interval)
            await self.verify_once()

    async def verify_once(self) -> int:
        """Compare every synced repository on both sides; mismatches go back to sync."""
        mismatches = await self.verify_each(self.db.repositories_in("synced"))
        mismatches += await self.queue_secondary_only()
        self.replicator.totals.verification_mismatches += mismatches
        self.activity.last_verification_at = time.time()
        return mismatches

    async def verify_each(self, repositories: list[str]) -> int:
        """Verify and record each repository (`verify_and_record`); how many differed.

        A repository whose side cannot be read is skipped with a warning: the next round
        asks again, and one registry hiccup must not stop the others' verification.
        """
        source, target = self.replicator.source, self.replicator.target

        async def one(repository: str) -> bool:
            try:
                diff = await verify_and_record(source, target, repository, self.db, self.index)
            except RegistryError as exc:
                logger.warning("verification of %s could not run: %s", repository, exc)
                return False
            if not diff.clean:
                self._wake.set()
            return not diff.clean

        limit = self.settings.max_concurrent_repositories
        return sum(await run_bounded(one, repositories, limit))

    async def queue_secondary_only(self) -> int:
        """Queue the repositories only the secondary has; how many there were.

        Someone pushed them straight to the secondary. The comparison above covers tracked
        repositories only, and backfill reads only the primary's catalog, so without this
        such a repository would differ forever; its sync deletes its tags.
        """
        try:
            primary = await self.replicator.source.catalog()
            stray = await secondary_only(primary, self.replicator.target)
        except RegistryError as exc:
            logger.warning("verification could not compare the catalogs: %s", exc)
            return 0
        if stray:
            logger.warning("verification: only on the secondary, queued: %s", stray)
            self.db.mark_many_pending(stray)
            self._wake.set()
        return len(stray)

    # -- status ----------------------------------------------------------------------------

    def status(self, rows: Rows = "failing") -> StatusSnapshot:
        """The snapshot the HTTP endpoints render (see `gdk_geo.secondary.status_page`),
        with the repository rows `rows` selects."""
        snapshot = status_snapshot(
            self.settings, self.db, self.replicator.totals, self.activity, rows
        )
        return replace(snapshot, verification_counts=self.index.verification_counts())


def status_snapshot(
    settings: SecondaryWorkerSettings,
    db: TrackingDB,
    totals: Totals,
    activity: Activity,
    rows: Rows = "failing",
) -> StatusSnapshot:
    """The replication status now; its JSON is what `geo.status` and `geo.check` read.

    Everything but the rows comes from single-row reads and a `GROUP BY` that SQLite
    counts, so without rows no Python object is made per repository: at 10,000 tracked
    repositories every row cost a request half a second or more.
    """
    last_event_at = db.last_event_at()
    return StatusSnapshot(
        replication_enabled=settings.replication_enabled,
        primary_api_url=settings.primary_api_url,
        registry_api_url=settings.registry_api_url,
        cursor=db.cursor(),
        primary_last_event_id=activity.primary_last_event_id,
        last_event_at=last_event_at,
        last_event_age_seconds=None if last_event_at is None else time.time() - last_event_at,
        event_feed=FeedState(activity.feed_connected, activity.feed_error),
        last_backfill_at=activity.last_backfill_at,
        backfill_error=activity.backfill_error,
        last_verification_at=activity.last_verification_at,
        counts=db.counts(),
        rechecks_due=db.rechecks_due(),
        totals=replace(totals),
        repositories=tuple(row.status() for row in _rows_of(db, rows)),
    )


def _rows_of(db: TrackingDB, rows: Rows) -> list[TrackedRepository]:
    if rows == "all":
        return db.rows()
    return db.failing_rows() if rows == "failing" else []
