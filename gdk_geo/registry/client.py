"""An async client for the Registry HTTP API v2, shaped by what Geo replication needs.

The requests live here (manifests and listings; blobs in `gdk_geo.registry.blobs`); what
their answers mean, the manifest model, is `gdk_geo.registry.manifest`'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from pathlib import Path
from typing import TypeVar

from yarl import URL

from gdk_geo.registry.auth import MintedTokens, RegistryAuth
from gdk_geo.registry.blobs import DEFAULT_CHUNK_SIZE, BlobEndpoints
from gdk_geo.registry.errors import (
    DigestMismatch,
    ManifestNotFound,
    RegistryError,
    TagDeletionUnsupported,
)
from gdk_geo.registry.manifest import Manifest, ManifestRef, media_type_of
from gdk_geo.registry.reference import (
    ACCEPT_MANIFESTS,
    OCI_INDEX,
    check_digest,
    check_tag,
    digest_of,
    is_digest,
    is_tag,
    manifest_path,
    referrers_path,
    tags_path,
)
from gdk_geo.registry.replies import error_code, error_from
from gdk_geo.registry.transport import RetryPolicy, Transport

PAGE_SIZE = 1000  # Distribution answers 400 PAGINATION_NUMBER_INVALID above this


T = TypeVar("T")


class RegistryClient(BlobEndpoints):
    """One registry's API over a keep-alive connection pool (`gdk_geo.registry.transport`).

    Use as an async context manager (or call `aclose()`): the pool is the point. The
    session is opened on first use, inside the event loop that uses it. Blob bytes stream
    on the event loop too, in `chunk_size` reads.
    """

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: Path | None = None,
        max_connections: int = 16,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        tokens: MintedTokens | None = None,
    ) -> None:
        self.chunk_size = chunk_size
        self.supports_tag_deletion: bool | None = None  # learnt on the first DELETE by tag
        self.supports_referrers: bool | None = None  # learnt on the first referrers query
        self._transport = Transport(
            base_url,
            ca_file=ca_file,
            max_connections=max_connections,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            auth=RegistryAuth(username, password),
            tokens=tokens,
        )
        self.base_url = self._transport.base_url
        self.retry = self._transport.retry

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._transport.aclose()

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    async def _paginate(self, path: str, key: str, *, what: str) -> list[str]:
        """Every item of a paginated listing, following `Link: <…>; rel="next"`."""
        items: list[str] = []
        url = self._transport.url(f"{path}?n={PAGE_SIZE}")
        seen: set[str] = set()
        while True:
            reply = await self._transport.send("GET", url, what=what)
            if reply.status != 200:
                raise error_from(reply, what)
            try:
                page = reply.json().get(key) or []  # type: ignore[union-attr]  # null when empty
            except (ValueError, AttributeError) as exc:
                raise RegistryError(f"{what}: the answer is not a JSON listing") from exc
            items.extend(page)
            following = reply.links.get("next", {}).get("url")
            if not following:
                return items
            url = reply.url.join(URL(str(following), encoded=True))
            if str(url) in seen:
                raise RegistryError(f"{what}: pagination loops at {url}")
            seen.add(str(url))

    # -- base and listings -----------------------------------------------------------------

    async def ping(self) -> None:
        """Check that the registry speaks API v2 (`GET /v2/`); raise `RegistryError` if not."""
        reply = await self._transport.send("GET", self._transport.url("/v2/"), what="ping")
        if reply.status != 200:
            raise error_from(reply, "ping")

    async def catalog(self) -> list[str]:
        """Every repository name the registry lists (all pages)."""
        return await self._paginate("/v2/_catalog", "repositories", what="catalog")

    async def list_tags(self, repo: str) -> list[str]:
        """Every tag of `repo` (all pages); `RepositoryNotFound` if the registry has no `repo`.

        An empty list means the registry answered "no tags", never that listing failed.
        """
        tags = await self._paginate(tags_path(repo), "tags", what=f"list tags of {repo}")
        invalid = [tag for tag in tags if not isinstance(tag, str) or not is_tag(tag)]
        if invalid:
            raise RegistryError(
                f"list tags of {repo}: the registry listed invalid tags {invalid[:3]}"
            )
        return tags

    # -- manifests -------------------------------------------------------------------------

    def _manifest_url(self, repo: str, reference: str) -> URL:
        return self._transport.url(manifest_path(repo, reference))

    async def head_manifest(self, repo: str, reference: str) -> ManifestRef | None:
        """Digest, media type and size of a tag or digest; None when the registry has none."""
        what = f"HEAD {repo}:{reference}"
        reply = await self._transport.send(
            "HEAD", self._manifest_url(repo, reference), what=what, headers=_ACCEPT
        )
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise error_from(reply, what)
        digest = reply.headers.get("Docker-Content-Digest")
        if not digest:  # some registries only send it on GET
            manifest = await self.get_manifest(repo, reference)
            return ManifestRef(manifest.digest, manifest.media_type, len(manifest.raw))
        media_type = reply.headers.get("Content-Type", "").split(";")[0].strip()
        size = int(reply.headers.get("Content-Length", "0") or 0)
        return ManifestRef(check_digest(digest), media_type, size)

    async def head_manifests(
        self, repo: str, references: Iterable[str], *, concurrency: int = 8
    ) -> dict[str, ManifestRef]:
        """HEAD many references at once (bounded); references the registry lacks are left out.

        This is what a no-op resync costs, so it runs concurrently over the kept-alive pool.
        """
        limit = asyncio.Semaphore(concurrency)

        async def one(reference: str) -> tuple[str, ManifestRef | None]:
            async with limit:
                return reference, await self.head_manifest(repo, reference)

        pairs = await gather_all(one(reference) for reference in references)
        return {reference: ref for reference, ref in pairs if ref is not None}

    async def get_manifest(self, repo: str, reference: str) -> Manifest:
        """The manifest's exact bytes, media type and digest, the digest checked on the bytes."""
        what = f"GET manifest {repo}:{reference}"
        reply = await self._transport.send(
            "GET", self._manifest_url(repo, reference), what=what, headers=_ACCEPT
        )
        code = error_code(reply) if reply.status == 404 else None
        if reply.status == 404 and code != "NAME_UNKNOWN":
            raise ManifestNotFound(f"{what}: not found", status=404, code=code)
        if reply.status != 200:
            raise error_from(reply, what)
        raw = reply.body
        claimed = reply.headers.get("Docker-Content-Digest")
        if claimed and not is_digest(claimed):
            raise DigestMismatch(f"{what}: the registry sent an invalid digest {claimed!r}")
        expected = reference if is_digest(reference) else claimed
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        digest = digest_of(raw, algorithm)
        if expected and digest != expected:
            raise DigestMismatch(f"{what}: bytes hash to {digest}, expected {expected}")
        if claimed and is_digest(reference) and claimed != reference:
            raise DigestMismatch(f"{what}: registry says {claimed}")
        return Manifest(raw, media_type_of(reply.headers.get("Content-Type", ""), raw), digest)

    async def referrers(self, repo: str, digest: str) -> list[dict[str, object]] | None:
        """Descriptors of the manifests whose `subject` is `digest` (the OCI 1.1 referrers
        API); None when the registry has no such API.

        A registry with the API answers any digest with an index (empty when nothing refers
        to it), so a 404 means no API (Distribution 2.x): remembered, so that an older
        registry costs one request per client, not one per manifest.
        """
        if self.supports_referrers is False:
            return None
        what = f"referrers of {repo}@{digest}"
        url = self._transport.url(referrers_path(repo, digest))
        reply = await self._transport.send("GET", url, what=what, headers=_ACCEPT_INDEX)
        if reply.status == 404 and not self.supports_referrers:
            self.supports_referrers = False
            return None
        if reply.status != 200:
            raise error_from(reply, what)
        self.supports_referrers = True
        try:
            found = reply.json().get("manifests") or []  # type: ignore[union-attr]
        except (ValueError, AttributeError) as exc:
            raise RegistryError(f"{what}: the answer is not an image index") from exc
        return [item for item in found if isinstance(item, dict)]

    async def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        """Push `raw` unchanged under a tag or digest; return the digest the registry stored.

        The registry refuses a manifest whose blobs or children it lacks, so callers push
        those first and no manifest with missing content is ever visible.
        """
        what = f"PUT manifest {repo}:{reference}"
        reply = await self._transport.send(
            "PUT",
            self._manifest_url(repo, reference),
            what=what,
            data=raw,
            headers={"Content-Type": media_type},
        )
        if reply.status not in (200, 201):
            raise error_from(reply, what)
        expected = digest_of(raw)
        stored = reply.headers.get("Docker-Content-Digest", expected)
        if stored != expected:
            raise DigestMismatch(f"{what}: registry stored {stored}, expected {expected}")
        return stored

    async def delete_manifest(self, repo: str, digest: str) -> bool:
        """Delete a manifest by digest (and, on Distribution, every tag pointing at it).

        False when it was already gone. Needs `storage.delete.enabled` on the registry.
        """
        what = f"DELETE manifest {repo}@{digest}"
        url = self._manifest_url(repo, check_digest(digest))
        reply = await self._transport.send("DELETE", url, what=what)
        if reply.status == 404:
            return False
        if reply.status not in (200, 202):
            raise error_from(reply, what)
        return True

    async def delete_tag(self, repo: str, tag: str) -> bool:
        """Delete one tag, leaving other tags on the same digest alone. False if it was gone.

        Raises `TagDeletionUnsupported` where the registry can't (Distribution 2.x parses the
        tag as a digest and answers 400 DIGEST_INVALID; others answer 405 or UNSUPPORTED);
        the answer is remembered in `supports_tag_deletion` so later calls don't ask again.
        """
        if self.supports_tag_deletion is False:
            raise TagDeletionUnsupported(f"{self.base_url} cannot delete tags by name")
        what = f"DELETE tag {repo}:{tag}"
        url = self._manifest_url(repo, check_tag(tag))
        reply = await self._transport.send("DELETE", url, what=what)
        code = error_code(reply)
        if reply.status in (200, 202):
            self.supports_tag_deletion = True
            return True
        if reply.status == 404 and code != "UNSUPPORTED":
            return False
        if reply.status == 405 or code in ("DIGEST_INVALID", "UNSUPPORTED"):
            self.supports_tag_deletion = False
            raise TagDeletionUnsupported(
                f"{what}: the registry cannot delete a tag by name (HTTP "
                f"{reply.status} {code or ''})".rstrip(),
                status=reply.status,
                code=code,
            )
        raise error_from(reply, what)


async def gather_all(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """`asyncio.gather`, but the first failure cancels the rest instead of orphaning them.

    The failure itself is raised (not wrapped in an ExceptionGroup), so callers can still
    catch `RegistryError`.
    """
    tasks = [asyncio.ensure_future(awaitable) for awaitable in awaitables]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


_ACCEPT = {"Accept": ACCEPT_MANIFESTS}
_ACCEPT_INDEX = {"Accept": OCI_INDEX}
