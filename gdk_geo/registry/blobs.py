"""The blob half of the Registry API: presence, cross-repository mounts, streamed GET and upload.

`RegistryClient` (`gdk_geo.registry.client`) takes these methods from `BlobEndpoints`, so
callers see one client; they live apart because blobs are a protocol of their own: upload
sessions that must be cancelled when unused, a `Location` to follow, and bytes that stream
in bounded chunks, checked against their digest as they pass (`verified_chunks`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from urllib.parse import urlencode

from yarl import URL

from gdk_geo.registry.errors import BlobNotFound, DigestMismatch, RegistryError
from gdk_geo.registry.reference import (
    blob_path,
    check_digest,
    check_repository,
    hasher_for,
    uploads_path,
)
from gdk_geo.registry.replies import (
    Reply,
    check_stored,
    error_code,
    error_from,
    read_reply,
    with_query,
)
from gdk_geo.registry.transport import Transport

DEFAULT_CHUNK_SIZE = 512 * 1024  # what one blob stream holds in memory at a time


class BlobEndpoints:
    """Blob requests over the client's transport, in its `chunk_size` reads."""

    _transport: Transport
    chunk_size: int

    def _blob_url(self, repo: str, digest: str) -> URL:
        return self._transport.url(blob_path(repo, digest))

    async def blob_exists(self, repo: str, digest: str) -> bool:
        """Whether `repo` holds the blob (HEAD); a blob in another repository doesn't count."""
        what = f"HEAD blob {repo}@{digest}"
        reply = await self._transport.send("HEAD", self._blob_url(repo, digest), what=what)
        if reply.status == 200:
            return True
        if reply.status == 404:
            return False
        raise error_from(reply, what)

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Link a blob `from_repo` already holds into `repo` without copying bytes.

        True when mounted (201). On 202 the registry could not mount and opened an upload
        instead; we cancel that upload and return False so the caller copies.
        """
        what = f"mount {digest} from {from_repo} into {repo}"
        query = urlencode({"mount": check_digest(digest), "from": check_repository(from_repo)})
        url = self._transport.url(f"{uploads_path(repo)}?{query}")
        reply = await self._transport.send("POST", url, what=what)
        if reply.status == 201:
            return True
        if reply.status == 202:
            await self._cancel_upload(reply)
            return False
        raise error_from(reply, what)

    def _upload_location(self, reply: Reply) -> URL | None:
        location = reply.headers.get("Location")
        return reply.url.join(URL(location, encoded=True)) if location else None

    async def _cancel_upload(self, reply: Reply) -> None:
        """Best-effort DELETE of an upload session we won't use (the registry expires it too)."""
        location = self._upload_location(reply)
        if location is not None:
            with suppress(RegistryError):
                await self._transport.send("DELETE", location, what="cancel upload", retry=False)

    @asynccontextmanager
    async def open_blob(
        self, repo: str, digest: str, size: int | None = None, *, hashed: bool = True
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream a blob in bounded chunks, verified against `digest` (and `size` if given).

        The verification raises `DigestMismatch` inside the iteration, before its end, so a
        consumer that forwards the chunks never completes with wrong bytes. `hashed=False`
        checks the size alone, for a consumer whose upload has the digest checked.
        """
        what = f"GET blob {repo}@{digest}"
        response = await self._transport.open("GET", self._blob_url(repo, digest), what=what)
        try:
            if response.status != 200:
                reply = await read_reply(response)
                if reply.status == 404 and error_code(reply) != "NAME_UNKNOWN":
                    raise BlobNotFound(f"{what}: not found", status=404)
                raise error_from(reply, what)
            chunks = response.content.iter_chunked(self.chunk_size)
            yield verified_chunks(chunks, digest, size, hashed=hashed)
        finally:
            response.release()  # back to the pool if read to the end, else closed

    async def upload_blob(
        self, repo: str, digest: str, chunks: AsyncIterator[bytes], size: int | None = None
    ) -> None:
        """Upload a blob from a stream: POST an upload, then one streaming PUT `?digest=`.

        Never retried here (a consumed stream can't be replayed); `copy_blob` restarts.
        """
        start = await self.start_upload(repo, digest)
        await self.finish_upload(start, repo, digest, chunks, size)

    async def start_upload(self, repo: str, digest: str) -> Reply:
        """Open an upload session for `digest` in `repo` (the POST of `upload_blob`); its
        reply is what `finish_upload` or `cancel_upload` takes."""
        what = f"upload blob {repo}@{digest}"
        check_digest(digest)
        uploads = self._transport.url(uploads_path(repo))
        start = await self._transport.send("POST", uploads, what=what)
        if start.status != 202 or self._upload_location(start) is None:
            raise error_from(start, what)
        return start

    async def cancel_upload(self, start: Reply) -> None:
        """Give up an upload session `start_upload` opened (best effort)."""
        await self._cancel_upload(start)

    async def finish_upload(
        self,
        start: Reply,
        repo: str,
        digest: str,
        chunks: AsyncIterator[bytes],
        size: int | None = None,
    ) -> None:
        """Send the blob into the session `start` opened: one streaming PUT `?digest=`; the
        session is cancelled when that fails."""
        what = f"upload blob {repo}@{digest}"
        location = self._upload_location(start)
        assert location is not None  # start_upload checked it
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)  # else aiohttp sends it chunked
        try:
            reply = await self._transport.send(
                "PUT",
                with_query(location, digest=digest),
                what=what,
                retry=False,
                data=chunks,
                headers=headers,
            )
        except BaseException:
            await self._cancel_upload(start)
            raise
        check_stored(reply, digest, what)


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
