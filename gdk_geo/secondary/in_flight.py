"""The one door every sync of the worker goes through: at most one sync per repository.

The scheduler, resync passes and the admin page's Resync all sync through `InFlight`, so
a resync of a repository the worker is already syncing joins that sync: one sync, and
everyone waiting gets its result.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from gdk_geo.secondary.results import RepositorySyncResult
from gdk_geo.secondary.tracking import TrackingDB

logger = logging.getLogger("gdk_geo.worker")


class Syncs(Protocol):
    """What `InFlight` needs of `gdk_geo.secondary.replicator.Replicator`."""

    db: TrackingDB

    async def run(self, repository: str) -> RepositorySyncResult: ...


class InFlight:
    """The worker's running syncs by repository; a second request for one joins it."""

    def __init__(self, replicator: Syncs) -> None:
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
