"""A blob copied from registry to registry, streamed.

`copy_blob` never holds a blob whole: the source's bytes go straight into the target's
upload, their size checked as they pass (`gdk_geo.registry.blobs`), their digest by the
target. It sits above the client because it drives two of them; what a manifest points
at, and so which blobs to copy, is `gdk_geo.registry.manifest`'s to say.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import aiohttp

from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.errors import (
    DigestMismatch,
    RegistryError,
    RegistryUnavailable,
    TokenRefused,
)
from gdk_geo.registry.replies import RETRY_STATUSES


async def copy_blob(
    source: RegistryClient,
    source_repo: str,
    target: RegistryClient,
    target_repo: str,
    digest: str,
    size: int | None = None,
) -> int:
    """Stream one blob from `source` to `target`, never holding it whole; return its size.

    The size is checked on the way; the digest by the target, which hashes the bytes as it
    stores them and refuses an upload whose `?digest=` they do not match (DIGEST_INVALID,
    raised as `DigestMismatch`). Hashing them here too cost the worker a tenth of its CPU
    in a copy of large layers, where its one core is the bottleneck (bench/RESULTS.md).
    Transient failures restart the copy from the beginning, a bounded number of times; a
    digest mismatch is not transient and is raised at once.
    """
    policy = target.retry
    for attempt in range(policy.attempts):
        try:
            return await _copy_once(source, source_repo, target, target_repo, digest, size)
        except DigestMismatch:
            raise
        except RegistryError as exc:
            transient = isinstance(exc, RegistryUnavailable) or exc.status in RETRY_STATUSES
            # A streamed upload cannot be re-sent with a fresh token; the copy can, once.
            transient = transient or (isinstance(exc, TokenRefused) and attempt == 0)
            if not transient or attempt + 1 >= policy.attempts:
                raise
        except (aiohttp.ClientError, OSError) as exc:  # the source stream broke mid-body
            if attempt + 1 >= policy.attempts:
                raise RegistryUnavailable(f"copy {digest}: {exc}") from exc
        await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


async def _copy_once(
    source: RegistryClient,
    source_repo: str,
    target: RegistryClient,
    target_repo: str,
    digest: str,
    size: int | None,
) -> int:
    """One attempt of `copy_blob`; the bytes copied.

    The target's upload session is opened while the source's GET is on its way, not after
    its answer: the POST does not depend on the bytes, and on Distribution it is a few
    file writes and fsyncs (3–24 ms on a loaded 2-core machine). Over a WAN it hides
    behind the GET's round trip; one after the other, it added to every pushed tag's
    latency (bench/RESULTS.md, scenario 11). A session the copy did not use is cancelled.
    """
    opening = asyncio.ensure_future(target.start_upload(target_repo, digest))
    handed_over = False  # once finish_upload has the session, it cancels it on failure
    try:
        async with source.open_blob(source_repo, digest, size, hashed=False) as chunks:
            start = await opening
            counted = _Counted(chunks)
            handed_over = True
            await target.finish_upload(start, target_repo, digest, counted, size)
        return counted.received
    except BaseException:
        if not handed_over:
            await _abandon(target, opening)
        raise


async def _abandon(target: RegistryClient, opening: asyncio.Future) -> None:
    """Cancel an upload session that is opening or open, and that no copy will use."""
    if not opening.done():
        opening.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await opening  # its own failure is not the copy's: the source's is raised
    if opening.done() and not opening.cancelled() and opening.exception() is None:
        await target.cancel_upload(opening.result())


class _Counted:
    """An async iterator of chunks that counts the bytes passing through it."""

    def __init__(self, chunks: AsyncIterator[bytes]) -> None:
        self._chunks = chunks
        self.received = 0

    def __aiter__(self) -> _Counted:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._chunks.__anext__()
        self.received += len(chunk)
        return chunk
