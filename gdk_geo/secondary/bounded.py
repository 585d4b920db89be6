"""At most N at once: how every pass of the secondary walks its repositories.

`geo.sync` in-process, the worker's resync and reverify passes, its verification and its
re-checks all act on many repositories and must not open more than
`max_concurrent_repositories` syncs or comparisons at a time: one runner serves them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def run_bounded(one: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int) -> list[R]:
    """`one(item)` for every item, at most `limit` (at least 1) at once; results in order.

    Every item gets its task at once and waits for a slot, so a pass of 10,000 names is
    10,000 small tasks and no queue of our own. The first exception cancels the rest and is
    raised as itself, not in the `ExceptionGroup` a `TaskGroup` wraps it in (as
    `gdk_geo.registry.client.gather_all` does): a reverify pass whose primary stopped
    answering mid-way is then reported as the unreadable side it is, not as an internal
    error about an exception group.
    """
    slots = asyncio.Semaphore(max(1, limit))

    async def bounded(item: T) -> R:
        async with slots:
            return await one(item)

    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(bounded(item)) for item in items]
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None
    return [task.result() for task in tasks]
