"""Resync and reverify passes the user asks the running worker for, and their progress.

GitLab's Resync and Reverify buttons hand work to Sidekiq; they never start a second sync
engine. Here the worker API (`gdk_geo.secondary.api`) and the admin page start a `Pass` in
the worker's own event loop, with its registry clients and blob locations, and return at
once; the pass appends progress events that any number of readers stream from the start.

`InFlight` is the one door every sync of the worker goes through (the scheduler's too), so
a resync of a repository the worker is already syncing joins that sync: one sync, and
everyone waiting gets its result.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from gdk_geo.errors import GdkGeoError
from gdk_geo.registry.errors import RegistryError
from gdk_geo.registry.reference import check_repository
from gdk_geo.secondary.replicator import (
    Replicator,
    _catalog,
    _every_repository,
    failure_reason,
    unknown_repositories,
)
from gdk_geo.secondary.repository_index import Filters, RepositoryIndex
from gdk_geo.secondary.sync import RepositorySyncResult
from gdk_geo.secondary.verify import (
    RepositoryDiff,
    SideUnreadable,
    compare_repository,
    read_side,
    unreachable,
)

logger = logging.getLogger("gdk_geo.worker")

KEEP_PASSES = 20  # finished passes kept for late readers; older ones are forgotten
Event = dict[str, Any]


def result_json(result: RepositorySyncResult) -> Event:
    """One sync result as `geo.sync` prints it, in or out of the worker."""
    return {
        "repository": result.repository,
        "ok": result.ok,
        "pushed": len(result.synced_tags),
        "unchanged": len(result.skipped_tags),
        "deleted": len(result.deleted_tags),
        "blobs_copied": result.blobs_copied,
        "blobs_mounted": result.blobs_mounted,
        "reason": None if result.ok else failure_reason(result),
    }


def diff_summary(diff: RepositoryDiff) -> str:
    """A verification failure in one line, for the admin page's "last failure"."""
    parts = [
        f"{label}: {', '.join(sorted(tags))}"
        for label, tags in (
            ("missing", diff.missing),
            ("only on the secondary", diff.extra),
            ("different digest", diff.mismatched),
            ("referrers missing", diff.missing_referrers),
        )
        if tags
    ]
    return "; ".join(parts) or "checksums differ"


@dataclass(frozen=True)
class Selection:
    """What a pass acts on: named repositories, all of them, the failed ones, or the default
    (for a resync: what is due, as the scheduler would; for a reverify: all)."""

    repositories: tuple[str, ...] = ()
    all: bool = False
    failed: bool = False

    def __post_init__(self) -> None:
        for name in self.repositories:
            try:
                check_repository(name)
            except ValueError:
                raise ValueError(f"{name!r} is not a repository name") from None


@dataclass
class Pass:
    """A requested pass: its progress events, appended as they happen, kept for replay."""

    id: str
    kind: str
    selection: Selection
    created_at: float = field(default_factory=time.time)
    events: list[Event] = field(default_factory=list)
    done: bool = False
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self._wake()

    def finish(self, event: Event) -> None:
        self.events.append({"type": "done", **event})
        self.done = True
        self._wake()

    def _wake(self) -> None:
        news, self._news = self._news, asyncio.Event()
        news.set()

    async def stream(self) -> AsyncIterator[Event]:
        """Every event from the first, then new ones as they come, until the pass is done."""
        sent = 0
        while True:
            news = self._news
            while sent < len(self.events):
                yield self.events[sent]
                sent += 1
            if self.done:
                return
            await news.wait()

    def summary(self) -> Event:
        return {"id": self.id, "kind": self.kind, "done": self.done, "events": len(self.events)}


class InFlight:
    """The worker's running syncs by repository; a second request for one joins it."""

    def __init__(self, replicator: Replicator) -> None:
        self.replicator = replicator
        self._running: dict[str, asyncio.Future[RepositorySyncResult]] = {}

    def running(self) -> list[str]:
        return sorted(self._running)

    async def run_claimed(self, repository: str) -> RepositorySyncResult:
        """Sync a repository already marked started (by the scheduler or `sync`)."""
        future = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieved)
        self._running[repository] = future
        try:
            result = await self.replicator.run(repository)
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            del self._running[repository]
        future.set_result(result)
        return result

    async def sync(self, repository: str) -> RepositorySyncResult:
        """Join the running sync of `repository`, or start one now."""
        running = self._running.get(repository)
        if running is not None:
            logger.info("resync of %s joins the sync already running", repository)
            return await asyncio.shield(running)
        self.replicator.db.start([repository])
        return await self.run_claimed(repository)


def _retrieved(future: asyncio.Future[RepositorySyncResult]) -> None:
    """Mark a failed sync's exception as seen: the one who ran it re-raises it already."""
    if not future.cancelled():
        future.exception()


class Passes:
    """Starts resync and reverify passes in the worker's loop and keeps their progress."""

    def __init__(
        self,
        in_flight: InFlight,
        index: RepositoryIndex,
        wake: Callable[[], None],
        backfill_interval: float,
        concurrency: int,
    ) -> None:
        self.in_flight = in_flight
        self.replicator = in_flight.replicator
        self.db = in_flight.replicator.db
        self.index = index
        self._wake = wake
        self._backfill_interval = backfill_interval
        self._concurrency = max(1, concurrency)
        self._ids = itertools.count(1)
        self._passes: dict[str, Pass] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, pass_id: str) -> Pass | None:
        return self._passes.get(pass_id)

    def resync(self, selection: Selection) -> Pass:
        """Start a resync pass; returns at once."""
        return self._start("resync", selection, self._resync)

    def reverify(self, selection: Selection) -> Pass:
        """Start a reverify pass; returns at once."""
        return self._start("reverify", selection, self._reverify)

    def _start(
        self, kind: str, selection: Selection, body: Callable[[Pass], Awaitable[None]]
    ) -> Pass:
        run = Pass(f"{next(self._ids)}-{int(time.time())}", kind, selection)
        self._passes[run.id] = run
        self._forget_old()
        task = asyncio.get_running_loop().create_task(self._guarded(run, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return run

    async def _guarded(self, run: Pass, body: Callable[[Pass], Awaitable[None]]) -> None:
        """Run the pass; whatever stops it ends the stream with the reason, never silently."""
        try:
            await body(run)
        except SideUnreadable as exc:
            line, fix = unreachable(exc, {"secondary": self.replicator.settings.node_name})
            run.finish({"error": "unreadable", "side": exc.side, "line": line, "fix": fix})
        except GdkGeoError as exc:
            run.finish({"error": exc.what, "fix": exc.fix})
        except RegistryError as exc:
            run.finish({"error": str(exc)})
        except Exception as exc:  # a bug in a pass must not take the worker down
            logger.exception("%s pass %s crashed", run.kind, run.id)
            run.finish({"error": f"internal error: {exc!r}"})
        finally:
            self._wake()

    def _forget_old(self) -> None:
        finished = [p for p in self._passes.values() if p.done]
        for old in finished[: max(0, len(finished) - KEEP_PASSES)]:
            del self._passes[old.id]

    # -- resync ------------------------------------------------------------------------------

    async def _resync(self, run: Pass) -> None:
        if not self.replicator.settings.replication_enabled:
            raise GdkGeoError(
                "registry replication is disabled on the secondary",
                fix="set geo.secondary.registry_replication.enabled: true in gdk.yml, then "
                "`invoke geo.restart`",
            )
        names, claimed = await self._resync_names(run)
        run.emit({"type": "planned", "total": len(names) + len(run.events)})

        async def one(position: int, name: str) -> None:
            if name in claimed:
                result = await self.in_flight.run_claimed(name)
            else:
                result = await self.in_flight.sync(name)
            run.emit({"type": "result", "position": position, **result_json(result)})

        await self._bounded(one, names, offset=len(run.events))
        results = [event for event in run.events if event["type"] == "result"]
        synced = sum(1 for event in results if event["ok"])
        run.finish({"synced": synced, "failed": len(results) - synced})

    async def _resync_names(self, run: Pass) -> tuple[list[str], set[str]]:
        """(names to sync, those of them already claimed); unknown names are reported now."""
        selection, source, target = run.selection, self.replicator.source, self.replicator.target
        if selection.repositories:
            names = list(dict.fromkeys(selection.repositories))
            unknown_names = await unknown_repositories(source, target, names, self.db)
            for position, unknown in enumerate(unknown_names):
                names.remove(unknown.repository)
                run.emit({"type": "result", "position": position, **result_json(unknown)})
            return names, set()
        if selection.all:
            return await _every_repository(source, target), set()
        if selection.failed:
            return self.db.repositories_in("failed"), set()
        catalog = await _catalog(source)
        self.db.mark_many_pending(self.db.needs_backfill(catalog, self._backfill_interval))
        claimed = self.db.claim_due(sys.maxsize)
        return claimed, set(claimed)

    # -- reverify ----------------------------------------------------------------------------

    async def _reverify(self, run: Pass) -> None:
        names = await self._reverify_names(run.selection)
        run.emit({"type": "planned", "total": len(names)})
        queued: list[str] = []

        async def one(position: int, name: str) -> None:
            diff = await compare_repository(self.replicator.source, self.replicator.target, name)
            if diff.clean:
                if self.db.get(name) is not None:
                    self.db.mark_checked(name, diff.target_checksum)
                self.index.record(name, ok=True)
            else:
                self.index.record(name, ok=False, failure=diff_summary(diff))
                self.db.mark_pending(name)
                queued.append(name)
                self._wake()
            run.emit({"type": "diff", "position": position, "clean": diff.clean, **asdict(diff)})

        await self._bounded(one, names)
        self.replicator.totals.verification_mismatches += len(queued)
        run.finish({"repositories": len(names), "differ": len(queued), "queued_for_sync": queued})

    async def _reverify_names(self, selection: Selection) -> list[str]:
        if selection.repositories:
            return list(dict.fromkeys(selection.repositories))
        if selection.failed:
            return self.index.names(Filters(verification_state="failed"))
        source, target = self.replicator.source, self.replicator.target
        return sorted(
            set(await read_side("primary", source, source.catalog()))
            | set(await read_side("secondary", target, target.catalog()))
        )

    async def _bounded(
        self,
        one: Callable[[int, str], Awaitable[None]],
        names: Sequence[str],
        offset: int = 0,
    ) -> None:
        limit = asyncio.Semaphore(self._concurrency)

        async def bounded(position: int, name: str) -> None:
            async with limit:
                await one(position, name)

        async with asyncio.TaskGroup() as group:
            for position, name in enumerate(names, start=offset):
                group.create_task(bounded(position, name))
