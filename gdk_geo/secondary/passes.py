"""Resync and reverify passes the user asks the running worker for, and their progress.

GitLab's Resync and Reverify buttons hand work to Sidekiq; they never start a second sync
engine. Here the worker API (`gdk_geo.secondary.api`) and the admin page start a `Pass` in
the worker's own event loop, with its registry clients and blob locations, and return at
once; the pass appends progress events that any number of readers stream from the start.

Every sync goes through `gdk_geo.secondary.in_flight.InFlight`, the scheduler's too; what
a resync acts on is `gdk_geo.secondary.selection.plan_sync`'s, as for `geo.sync` without
the worker.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from gdk_geo.errors import GdkGeoError
from gdk_geo.registry.errors import RegistryError
from gdk_geo.secondary.bounded import run_bounded
from gdk_geo.secondary.in_flight import InFlight
from gdk_geo.secondary.replicator import Replicator, failure_reason
from gdk_geo.secondary.repository_index import Filters, RepositoryIndex
from gdk_geo.secondary.results import RepositorySyncResult
from gdk_geo.secondary.selection import Selection, plan_sync
from gdk_geo.secondary.verify import (
    SideUnreadable,
    read_side,
    unreachable,
    verify_and_record,
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


class Passes:
    """Starts resync and reverify passes in the worker's loop and keeps their progress."""

    def __init__(
        self,
        replicator: Replicator,
        in_flight: InFlight,
        index: RepositoryIndex,
        wake: Callable[[], None],
    ) -> None:
        self.replicator = replicator
        self.in_flight = in_flight  # every sync goes through it, as the scheduler's do
        self.settings = replicator.settings
        self.db = replicator.db
        self.index = index
        self._wake = wake
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

    async def _each(
        self, one: Callable[[int, str], Awaitable[None]], names: list[str], first: int = 0
    ) -> None:
        """`one(position, name)` for every name, as many at once as syncs may run."""
        positions = list(enumerate(names, start=first))
        limit = self.settings.max_concurrent_repositories
        await run_bounded(lambda item: one(*item), positions, limit)

    # -- resync ------------------------------------------------------------------------------

    async def _resync(self, run: Pass) -> None:
        """Sync what the selection names (`plan_sync`, as `geo.sync` in-process does)."""
        source, target = self.replicator.source, self.replicator.target
        plan = await plan_sync(self.settings, self.db, source, target, run.selection)
        run.emit({"type": "planned", "total": len(plan.unknown) + len(plan.names)})
        for position, unknown in enumerate(plan.unknown):
            run.emit({"type": "result", "position": position, **result_json(unknown)})
        sync = self.in_flight.run_claimed if plan.claimed else self.in_flight.sync

        async def one(position: int, name: str) -> None:
            result = await sync(name)
            run.emit({"type": "result", "position": position, **result_json(result)})

        await self._each(one, plan.names, first=len(plan.unknown))
        results = [event for event in run.events if event["type"] == "result"]
        synced = sum(1 for event in results if event["ok"])
        run.finish({"synced": synced, "failed": len(results) - synced})

    # -- reverify ----------------------------------------------------------------------------

    async def _reverify(self, run: Pass) -> None:
        """Verify what the selection names; what differs is recorded and queued for sync."""
        names = await self._reverify_names(run.selection)
        run.emit({"type": "planned", "total": len(names)})
        source, target = self.replicator.source, self.replicator.target
        queued: list[str] = []

        async def one(position: int, name: str) -> None:
            diff = await verify_and_record(source, target, name, self.db, self.index)
            if not diff.clean:
                queued.append(name)
                self._wake()
            run.emit({"type": "diff", "position": position, "clean": diff.clean, **asdict(diff)})

        await self._each(one, names)
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
