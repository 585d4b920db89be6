"""The one door every sync of the worker goes through: at most one sync per repository.

The scheduler, resync passes and the admin page's Resync all sync through `InFlight`. A
sync asked for while the same repository is being synced must not be answered by that
sync: it listed both sides before the request, so it may have missed the very change the
request is about (a tag removed from the primary's storage sends no event; issue 25 #15).
GitLab's Resync marks the repository pending, so a fresh sync follows; here the request
waits for the running sync and is answered by the next one, which starts after it. Everyone
who asks during the same running sync shares that one follow-up: a burst of resyncs costs
one more sync, not one each.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gdk_geo.secondary.results import RepositorySyncResult
from gdk_geo.secondary.tracking import TrackingDB

logger = logging.getLogger("gdk_geo.worker")

Outcome = asyncio.Future[RepositorySyncResult]


class Syncs(Protocol):
    """What `InFlight` needs of `gdk_geo.secondary.replicator.Replicator`."""

    db: TrackingDB

    async def run(self, repository: str) -> RepositorySyncResult: ...


class InFlight:
    """The worker's running syncs by repository, and the sync queued behind each."""

    def __init__(self, replicator: Syncs) -> None:
        self.replicator = replicator
        self._running: dict[str, Outcome] = {}
        self._follow_ups: dict[str, asyncio.Task[RepositorySyncResult]] = {}

    def running(self) -> list[str]:
        return sorted(self._running)

    async def run_claimed(self, repository: str) -> RepositorySyncResult:
        """Sync a repository the caller already marked started (the scheduler's claim)."""
        return await self._sync(repository, claimed=True)

    async def sync(self, repository: str) -> RepositorySyncResult:
        """Sync `repository` now, or right after the sync of it that is running ends."""
        return await self._sync(repository, claimed=False)

    async def _sync(self, repository: str, claimed: bool) -> RepositorySyncResult:
        """A sync that starts now or later, never one that started before this call."""
        running = self._running.get(repository)
        if running is None:
            return await self._run(repository, claimed)
        logger.info("a sync of %s is running: a fresh one follows it", repository)
        return await asyncio.shield(self._follow_up(repository, running))

    def _follow_up(self, repository: str, running: Outcome) -> asyncio.Task[RepositorySyncResult]:
        """The one sync queued behind `running`, shared by everyone who asks meanwhile.

        A task of its own, not the first asker's: anyone who stops waiting (a cancelled
        pass) must not take the others' sync with it.
        """
        follow_up = self._follow_ups.get(repository)
        if follow_up is None:
            follow_up = asyncio.get_running_loop().create_task(self._after(repository, running))
            follow_up.add_done_callback(_retrieved)
            self._follow_ups[repository] = follow_up
        return follow_up

    async def _after(self, repository: str, running: Outcome) -> RepositorySyncResult:
        try:
            await asyncio.wait([running])  # its outcome, failure or not, is its own caller's
        finally:
            # The follow-up is about to start (or was cancelled): whoever asks from now on
            # wants a later one.
            del self._follow_ups[repository]
        again = self._running.get(repository)
        if again is not None:  # began after `running` ended, so after every waiter asked
            return await asyncio.shield(again)
        return await self._run(repository, claimed=False)

    async def _run(self, repository: str, claimed: bool) -> RepositorySyncResult:
        """Run the sync in this task (cancelling the caller cancels it), announced to joiners."""
        if not claimed:
            self.replicator.db.start([repository])
        outcome: Outcome = asyncio.get_running_loop().create_future()
        outcome.add_done_callback(_retrieved)
        self._running[repository] = outcome
        try:
            result = await self.replicator.run(repository)
        except asyncio.CancelledError:
            outcome.cancel()
            raise
        except BaseException as exc:
            outcome.set_exception(exc)
            raise
        finally:
            del self._running[repository]
        outcome.set_result(result)
        return result


def _retrieved(future: asyncio.Future[RepositorySyncResult]) -> None:
    """Mark a failed sync's exception as seen: whoever ran or awaited it has it already."""
    if not future.cancelled():
        future.exception()
