"""What a copy between registries moves: the manifest model, and blob bytes.

`references` reads a manifest's descriptors (the child manifests of an index, the config
and layers of an image); `copy_blob` streams one blob from registry to registry, never
holding it whole: its size is checked as the bytes pass, its digest by the target.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import aiohttp

from gdk_geo.registry.errors import (
    DigestMismatch,
    RegistryError,
    RegistryUnavailable,
    TokenRefused,
)
from gdk_geo.registry.reference import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    check_digest,
    hasher_for,
)
from gdk_geo.registry.replies import RETRY_STATUSES

if TYPE_CHECKING:
    from gdk_geo.registry.client import Manifest, RegistryClient


DEFAULT_CHUNK_SIZE = 512 * 1024

# Layers the registry is not meant to store (Windows base layers): fetched from `urls`.
_FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


@dataclass(frozen=True)
class Descriptor:
    """The part of an OCI/Docker content descriptor a sync needs."""

    digest: str
    size: int | None
    media_type: str
    urls: tuple[str, ...] = ()

    @property
    def foreign(self) -> bool:
        """A layer the registry does not store (it is fetched from `urls` instead)."""
        return bool(self.urls) and self.media_type in _FOREIGN_LAYER_TYPES


class UnsupportedManifest(ValueError):
    """A manifest type we cannot copy faithfully (e.g. Docker schema 1)."""


def references(manifest: Manifest) -> tuple[list[Descriptor], list[Descriptor]]:
    """(child manifests, blobs) a manifest points at: children for an index, else config+layers."""
    if manifest.media_type not in MANIFEST_MEDIA_TYPES:
        raise UnsupportedManifest(f"unsupported manifest media type {manifest.media_type!r}")
    try:
        body = json.loads(manifest.raw)
    except ValueError as exc:
        raise UnsupportedManifest(f"manifest {manifest.digest} is not JSON") from exc
    if manifest.media_type in INDEX_MEDIA_TYPES:
        return [_descriptor(item) for item in body.get("manifests") or []], []
    blobs = [_descriptor(body["config"])] if body.get("config") else []
    blobs += [_descriptor(item) for item in body.get("layers") or []]
    return [], [blob for blob in blobs if not blob.foreign]


def _descriptor(item: dict[str, object]) -> Descriptor:
    size = item.get("size")
    return Descriptor(
        digest=check_digest(str(item.get("digest", ""))),
        size=size if isinstance(size, int) else None,
        media_type=str(item.get("mediaType", "")),
        urls=tuple(str(url) for url in item.get("urls") or ()),  # type: ignore[attr-defined]
    )


class _BlobCheck:
    """Size (and, when `hashed`, digest) of a blob's bytes, checked while they pass."""

    def __init__(self, digest: str, size: int | None, hashed: bool = True) -> None:
        self.digest, self.size = digest, size
        self.received = 0
        self._hasher = hasher_for(digest) if hashed else None

    def update(self, chunk: bytes) -> bytes:
        self.received += len(chunk)
        if self.size is not None and self.received > self.size:
            raise DigestMismatch(f"blob {self.digest}: more than the expected {self.size} bytes")
        if self._hasher is not None:
            self._hasher.update(chunk)
        return chunk

    def finish(self) -> None:
        if self.size is not None and self.received != self.size:
            raise DigestMismatch(
                f"blob {self.digest}: got {self.received} bytes, expected {self.size}"
            )
        if self._hasher is None:
            return
        actual = f"{self.digest.split(':', 1)[0]}:{self._hasher.hexdigest()}"
        if actual != self.digest:
            raise DigestMismatch(f"blob {self.digest}: content hashes to {actual}")


async def verified_chunks(
    chunks: AsyncIterator[bytes], digest: str, size: int | None, *, hashed: bool = True
) -> AsyncIterator[bytes]:
    """Pass `chunks` through, raising `DigestMismatch` as soon as they can't be `digest`.

    A size overrun is caught on the chunk that overruns; a wrong hash or a short body on
    the last one, before the consumer sees the end of the stream, so an upload fed by this
    iterator never completes with wrong bytes. Without `hashed`, only the size is checked:
    for a consumer that has the digest checked elsewhere (an upload's `?digest=`).
    """
    check = _BlobCheck(digest, size, hashed)
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
