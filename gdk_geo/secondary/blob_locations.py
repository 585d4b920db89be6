"""Where blobs live on the secondary registry, so a sync mounts what another already copied."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


class BlobLocations:
    """Where blobs live on ONE target registry, and which are being copied there right now.

    Keep one per target registry for the whole process and pass it to every sync: each
    blob a sync finds, mounts or copies is recorded, so the next repository that needs it
    mounts it from there instead of copying it again (GitLab copied shared base layers
    once per repository).

    Copies in flight are keyed by digest alone, not by (repository, digest): two
    repositories needing the same new layer at once must not both copy it. The second one
    waits for the first copy, then mounts from the repository it landed in.
    """

    def __init__(self) -> None:
        self._repositories: dict[str, set[str]] = {}
        self._copies: dict[str, asyncio.Task[str]] = {}

    def add(self, digest: str, repository: str) -> None:
        """Remember that `repository` on the target holds `digest`."""
        self._repositories.setdefault(digest, set()).add(repository)

    def discard(self, digest: str, repository: str) -> None:
        """Forget one location (a mount from it failed, so the knowledge was stale)."""
        self._repositories.get(digest, set()).discard(repository)

    def forget_repository(self, repository: str) -> None:
        """Forget every blob of a repository (it was deleted on the target)."""
        for repositories in self._repositories.values():
            repositories.discard(repository)

    def repositories(self, digest: str) -> list[str]:
        """The target repositories known to hold `digest`, in a stable order."""
        return sorted(self._repositories.get(digest, ()))

    def copy_in_flight(self, digest: str) -> asyncio.Task[str] | None:
        """The copy of `digest` running now (its result is the repository it lands in)."""
        task = self._copies.get(digest)
        return task if task is not None and not task.done() else None

    def start_copy(self, digest: str, copy: Awaitable[str]) -> asyncio.Task[str]:
        """Run `copy` as THE copy of `digest`; it is forgotten here once it finishes."""
        task = asyncio.ensure_future(copy)
        self._copies[digest] = task
        task.add_done_callback(lambda _: self._forget_copy(digest, task))
        return task

    def _forget_copy(self, digest: str, task: asyncio.Task[str]) -> None:
        if self._copies.get(digest) is task:
            del self._copies[digest]
