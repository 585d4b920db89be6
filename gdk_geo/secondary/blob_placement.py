"""Blobs into one repository on the secondary registry, during one sync: present, mount, copy.

`gdk_geo.secondary.sync.RepositorySync` decides which tags to copy; for each blob their
manifests point at, this module makes the blob present in the target repository in the
cheapest way that is still correct: nothing when it is there already, a cross-repository
mount when another repository on the target holds it (`BlobLocations` knows which), else one
streamed copy, and only one however many tags or repositories need the same blob at once.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.copy import copy_blob
from gdk_geo.registry.errors import RegistryError
from gdk_geo.registry.manifest import Descriptor
from gdk_geo.secondary.blob_locations import BlobLocations
from gdk_geo.secondary.results import RepositorySyncResult

T = TypeVar("T")

SMALL_BLOB = 1 << 20  # bytes; see BlobPlacement._skip_presence_check


class BlobOutcome(enum.Enum):
    PRESENT = "present"
    MOUNTED = "mounted"
    COPIED = "copied"


@dataclass(eq=False)
class BlobPlacement:
    """The blobs of one run: each placed once, at most `max_concurrent_blobs` at a time.

    What it did is counted into `result` (present, mounted, copied, bytes), the run's result.
    `target_is_new` is set by the run when the target did not know the repository.
    """

    source: RegistryClient
    target: RegistryClient
    repository: str
    locations: BlobLocations
    result: RepositorySyncResult
    max_concurrent_blobs: int = 4
    target_is_new: bool = False
    _limit: asyncio.Semaphore = field(init=False)
    _placing: dict[str, asyncio.Future[None]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self._limit = asyncio.Semaphore(self.max_concurrent_blobs)

    def ensure(self, blob: Descriptor) -> Awaitable[None]:
        """Make one blob present in the target repository, once per run."""
        return once(self._placing, blob.digest, lambda: self._place_and_count(blob))

    async def _place_and_count(self, blob: Descriptor) -> None:
        async with self._limit:
            outcome = await self._place(blob)
        if outcome is BlobOutcome.PRESENT:
            self.result.blobs_present += 1
        elif outcome is BlobOutcome.MOUNTED:
            self.result.blobs_mounted += 1
        # copies are counted by the copy itself

    async def _place(self, blob: Descriptor) -> BlobOutcome:
        """Present → nothing; known elsewhere on the target → mount; else copy (once)."""
        repository, digest = self.repository, blob.digest
        while True:
            in_flight = self.locations.copy_in_flight(digest)
            if in_flight is not None:
                try:
                    holder = await asyncio.shield(in_flight)
                except asyncio.CancelledError:
                    if in_flight.cancelled():
                        continue  # its owner gave up; not our cancellation: try ourselves
                    raise
                if holder == repository:
                    return BlobOutcome.PRESENT
            if not self._skip_presence_check(blob) and await self.target.blob_exists(
                repository, digest
            ):
                self.locations.add(digest, repository)
                return BlobOutcome.PRESENT
            if await self._mount(digest):
                return BlobOutcome.MOUNTED
            if self.locations.copy_in_flight(digest) is None:  # no await since the check
                await self.locations.start_copy(digest, self._copy(blob))
                return BlobOutcome.COPIED

    def _skip_presence_check(self, blob: Descriptor) -> bool:
        """Whether to copy a blob without asking the target first.

        A repository the target did not know holds no blobs, except what an interrupted
        sync left behind. For a small blob, copying it again costs about what the HEAD
        does, so the HEAD is skipped (bench/RESULTS.md counts the requests it saves); a
        large blob is always asked about, so an interrupted large copy is not redone.
        """
        return self.target_is_new and blob.size is not None and blob.size <= SMALL_BLOB

    async def _mount(self, digest: str) -> bool:
        """Try each target repository known to hold `digest`; forget the ones that fail."""
        for other in self.locations.repositories(digest):
            if other == self.repository:
                continue
            try:
                mounted = await self.target.mount_blob(self.repository, digest, other)
            except RegistryError:
                mounted = False
            if mounted:
                self.locations.add(digest, self.repository)
                return True
            self.locations.discard(digest, other)
        return False

    async def _copy(self, blob: Descriptor) -> str:
        """Stream the blob primary → secondary; the result is where it landed."""
        copied = await copy_blob(
            self.source, self.repository, self.target, self.repository, blob.digest, blob.size
        )
        self.result.blobs_copied += 1
        self.result.bytes_copied += copied
        self.locations.add(blob.digest, self.repository)
        return self.repository


def once(
    tasks: dict[str, asyncio.Future[T]], key: str, start: Callable[[], Awaitable[T]]
) -> Awaitable[T]:
    """Await the task for `key`, starting it on first use; a waiter's cancellation spares it."""
    task = tasks.get(key)
    if task is None:
        task = tasks[key] = asyncio.ensure_future(start())
    return asyncio.shield(task)
