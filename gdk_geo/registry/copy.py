"""Blob bytes: streamed between registries, their digest and size checked as they pass."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp

from gdk_geo.registry.errors import (
    DigestMismatch,
    RegistryError,
    RegistryUnavailable,
    TokenRefused,
)
from gdk_geo.registry.reference import hasher_for
from gdk_geo.registry.transport import RETRY_STATUSES

if TYPE_CHECKING:
    from gdk_geo.registry.client import RegistryClient


DEFAULT_CHUNK_SIZE = 512 * 1024


class _BlobCheck:
    """Digest and size of a blob's bytes, checked while they pass."""

    def __init__(self, digest: str, size: int | None) -> None:
        self.digest, self.size = digest, size
        self.received = 0
        self._hasher = hasher_for(digest)

    def update(self, chunk: bytes) -> bytes:
        self.received += len(chunk)
        if self.size is not None and self.received > self.size:
            raise DigestMismatch(f"blob {self.digest}: more than the expected {self.size} bytes")
        self._hasher.update(chunk)
        return chunk

    def finish(self) -> None:
        if self.size is not None and self.received != self.size:
            raise DigestMismatch(
                f"blob {self.digest}: got {self.received} bytes, expected {self.size}"
            )
        actual = f"{self.digest.split(':', 1)[0]}:{self._hasher.hexdigest()}"
        if actual != self.digest:
            raise DigestMismatch(f"blob {self.digest}: content hashes to {actual}")


async def verified_chunks(
    chunks: AsyncIterator[bytes], digest: str, size: int | None
) -> AsyncIterator[bytes]:
    """Pass `chunks` through, raising `DigestMismatch` as soon as they can't be `digest`.

    A size overrun is caught on the chunk that overruns; a wrong hash or a short body on
    the last one, before the consumer sees the end of the stream, so an upload fed by this
    iterator never completes with wrong bytes.
    """
    check = _BlobCheck(digest, size)
    async for chunk in chunks:
        yield check.update(chunk)
    check.finish()


async def copy_blob(
    source: RegistryClient,
    source_repo: str,
    target: RegistryClient,
    target_repo: str,
    digest: str,
    size: int | None = None,
) -> int:
    """Stream one blob from `source` to `target`, never holding it whole; return its size.

    The bytes are verified on the way (and again by the target on `?digest=`). Transient
    failures restart the copy from the beginning, a bounded number of times; a digest
    mismatch is not transient and is raised at once.
    """
    policy = target.retry
    for attempt in range(policy.attempts):
        try:
            async with source.open_blob(source_repo, digest, size) as chunks:
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
