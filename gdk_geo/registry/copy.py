"""A blob copied from registry to registry, streamed.

`copy_blob` never holds a blob whole: the source's bytes go straight into the target's
upload, their size checked as they pass (`gdk_geo.registry.blobs`), their digest by the
target. It sits above the client because it drives two of them; what a manifest points
at, and so which blobs to copy, is `gdk_geo.registry.manifest`'s to say.
"""

from __future__ import annotations

import asyncio
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
            async with source.open_blob(source_repo, digest, size, hashed=False) as chunks:
                counted = _Counted(chunks)
                await target.upload_blob(target_repo, digest, counted, size)
            return counted.received
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
