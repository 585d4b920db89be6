"""`InFlight`, the door every sync of the worker goes through, with syncs held in flight.

Issue 25 #15: a resync asked for while the worker was syncing the same repository joined
that sync, so it could report the repository synced with a change the running sync had
listed too early to see (a tag removed from the primary's storage, which sends no event).
A resync asked for at time T must be answered by a sync that started at or after T.

The replicator here is a stand-in whose every run waits at a gate the test opens, and
whose result names the run; the tracking database is a real one.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from gdk_geo.secondary.in_flight import InFlight
from gdk_geo.secondary.results import RepositorySyncResult
from gdk_geo.secondary.tracking import TrackingDB

REPO = "group/app"
T = TypeVar("T")


class GatedReplicator:
    """Stands for `Replicator`: run n signals `started[n]`, then waits for `gates[n]`."""

    def __init__(self, db: TrackingDB) -> None:
        self.db = db
        self.runs = 0
        self.started: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.gates: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)

    async def run(self, repository: str) -> RepositorySyncResult:
        self.runs += 1
        run = self.runs
        self.started[run].set()
        await self.gates[run].wait()
        self.db.finish_success(repository, None)
        return RepositorySyncResult(repository, synced_tags=[f"run {run}"]).finish()


def which_run(result: RepositorySyncResult) -> str:
    return result.synced_tags[0]


async def began(replicator: GatedReplicator, run: int) -> None:
    """Until run `run` is in flight; a few seconds without it is a failure, not a hang."""
    await asyncio.wait_for(replicator.started[run].wait(), timeout=5)


async def asked(*callers: asyncio.Task[T]) -> None:
    """Until every caller has made its call and waits in it (its coroutine has run to its
    first suspension). The loop is only yielded to, never slept in: no time passes."""
    while any(
        inspect.getcoroutinestate(caller.get_coro()) == inspect.CORO_CREATED  # type: ignore[arg-type]
        for caller in callers
    ):
        await asyncio.sleep(0)


def run_with(tmp_path: Path, scenario: Callable[[InFlight, GatedReplicator], Awaitable[T]]) -> T:
    db = TrackingDB(tmp_path / "tracking.sqlite3")
    try:
        replicator = GatedReplicator(db)
        return asyncio.run(scenario(InFlight(replicator), replicator))  # type: ignore[arg-type]
    finally:
        db.close()


def test_a_resync_asked_for_mid_sync_gets_a_sync_that_started_after_it(tmp_path: Path) -> None:
    async def scenario(in_flight: InFlight, replicator: GatedReplicator) -> list[str]:
        first = asyncio.create_task(in_flight.sync(REPO))
        await began(replicator, 1)  # the sync of an earlier push is in flight
        late = asyncio.create_task(in_flight.sync(REPO))
        await asked(late)
        replicator.gates[1].set()
        await began(replicator, 2)
        replicator.gates[2].set()
        return [which_run(await first), which_run(await late)]

    assert run_with(tmp_path, scenario) == ["run 1", "run 2"]


def test_callers_during_one_sync_share_one_follow_up(tmp_path: Path) -> None:
    """Three resyncs during run 1 are answered by run 2 alone; one asked during run 2,
    after it started, gets run 3: the follow-up is closed to newcomers once it starts."""

    async def scenario(in_flight: InFlight, replicator: GatedReplicator) -> tuple[list[str], int]:
        scheduler = asyncio.create_task(in_flight.run_claimed(REPO))
        await began(replicator, 1)
        during_first = [asyncio.create_task(in_flight.sync(REPO)) for _ in range(3)]
        await asked(*during_first)
        replicator.gates[1].set()
        await began(replicator, 2)
        during_second = asyncio.create_task(in_flight.sync(REPO))
        await asked(during_second)
        replicator.gates[2].set()
        await began(replicator, 3)
        replicator.gates[3].set()
        results = [await scheduler, *[await c for c in during_first], await during_second]
        return [which_run(r) for r in results], replicator.runs

    runs, count = run_with(tmp_path, scenario)
    assert runs == ["run 1", "run 2", "run 2", "run 2", "run 3"]
    assert count == 3


def test_a_sync_with_nothing_running_starts_at_once_and_records(tmp_path: Path) -> None:
    async def scenario(in_flight: InFlight, replicator: GatedReplicator) -> str:
        replicator.gates[1].set()
        result = which_run(await in_flight.sync(REPO))
        assert in_flight.running() == []
        return f"{result}, {replicator.db.get(REPO).state}"

    assert run_with(tmp_path, scenario) == "run 1, synced"


def test_a_failed_sync_fails_its_caller_and_the_follow_up_still_runs(tmp_path: Path) -> None:
    class Boom(Exception):
        pass

    async def scenario(in_flight: InFlight, replicator: GatedReplicator) -> str:
        original = replicator.run

        async def run(repository: str) -> RepositorySyncResult:
            result = await original(repository)
            if replicator.runs == 1:
                raise Boom
            return result

        replicator.run = run  # type: ignore[method-assign]
        first = asyncio.create_task(in_flight.sync(REPO))
        await began(replicator, 1)
        late = asyncio.create_task(in_flight.sync(REPO))
        await asked(late)
        replicator.gates[1].set()
        replicator.gates[2].set()
        with pytest.raises(Boom):
            await first
        return which_run(await late)

    assert run_with(tmp_path, scenario) == "run 2"
