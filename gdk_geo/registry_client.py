"""An async client for the Registry HTTP API v2, shaped by what Geo replication needs.

Every call either returns what the registry said or raises a `RegistryError`: a listing
that fails is an exception, never an empty list (GitLab deleted every secondary tag after a
failed listing). Listings follow `Link` pagination, manifest requests accept every manifest
media type (GitLab's HEAD lacked the OCI index type and skipped multi-arch tags), and
blobs are streamed in bounded chunks with their digest and size checked as bytes pass.

TLS is always verified, against the system store or a given CA file. Transient failures
(connection errors, 408, 429, 5xx) are retried a bounded number of times with exponential
backoff and jitter; bodies that cannot be replayed (blob uploads) are retried by restarting
the whole copy in `copy_blob`.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import re
import ssl
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Generator,
    Iterable,
    Iterator,
)
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)

PAGE_SIZE = 1000  # Distribution answers 400 PAGINATION_NUMBER_INVALID above this
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
DEFAULT_CHUNK_SIZE = 512 * 1024

_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")

T = TypeVar("T")
_TOKEN_REQUEST = "gdk_geo_token_request"  # request extension: read this response's body


class RegistryError(Exception):
    """The registry refused or failed a request (after retries, where retrying made sense)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RegistryUnavailable(RegistryError):
    """No (complete) answer: connection refused, reset or timed out, on every attempt.

    Also raised by a streamed upload whose source stream broke mid-body.
    """


class TLSVerificationFailed(RegistryError):
    """The registry's certificate does not verify against the CA file (or the system store).

    Not retried: it will not verify on the next attempt either. Verification is never
    turned off; pass the CA that signed the registry's certificate instead.
    """


class RepositoryNotFound(RegistryError):
    """404 NAME_UNKNOWN: the registry has never heard of the repository.

    Distinct from a failure so a sync can tell "deleted on the primary" from "error".
    """


class ManifestNotFound(RegistryError):
    """404 for a manifest reference (tag or digest) in a repository."""


class BlobNotFound(RegistryError):
    """404 for a blob the caller expected to exist."""


class DigestMismatch(RegistryError):
    """Bytes received do not hash to (or are not the size of) what was asked for."""


class TagDeletionUnsupported(RegistryError):
    """The registry cannot delete a tag on its own (Distribution 2.x answers 400 DIGEST_INVALID).

    Deleting by digest instead removes every tag pointing at that digest, so callers must
    decide whether that is acceptable; the client never falls back silently.
    """


@dataclass(frozen=True)
class ManifestRef:
    """What a HEAD on a manifest tells: enough to compare tags without downloading."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes (re-pushed unchanged so the digest is preserved)."""

    raw: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff and jitter (so retries don't synchronise)."""

    attempts: int = 4
    base_delay: float = 0.2
    max_delay: float = 5.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based)."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)


def check_repository(name: str) -> str:
    """`name` if it is a valid repository name; names end up in URL paths, so refuse others."""
    if not _REPOSITORY.fullmatch(name):
        raise ValueError(f"invalid repository name: {name!r}")
    return name


def check_digest(digest: str) -> str:
    """`digest` if it is a sha256/sha512 digest in canonical form."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"invalid digest: {digest!r}")
    return digest


def check_reference(reference: str) -> str:
    """`reference` if it is a valid tag or digest."""
    if not (_TAG.fullmatch(reference) or _DIGEST.fullmatch(reference)):
        raise ValueError(f"invalid tag or digest: {reference!r}")
    return reference


def is_tag(reference: str) -> bool:
    """True for a valid tag name."""
    return _TAG.fullmatch(reference) is not None and not is_digest(reference)


def is_digest(reference: str) -> bool:
    """True for a digest reference, False for a tag."""
    return _DIGEST.fullmatch(reference) is not None


def _hasher(digest: str) -> hashlib._Hash:
    return hashlib.new(check_digest(digest).split(":", 1)[0])


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The content digest of `data` in `algorithm:hex` form."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class _BlobCheck:
    """Digest and size of a blob's bytes, checked while they pass (async and blocking paths)."""

    def __init__(self, digest: str, size: int | None) -> None:
        self.digest, self.size = digest, size
        self.received = 0
        self._hasher = _hasher(digest)

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


def _verified_blocking(chunks: Iterator[bytes], check: _BlobCheck) -> Iterator[bytes]:
    """`verified_chunks` for the blocking copy path."""
    for chunk in chunks:
        yield check.update(chunk)
    check.finish()


def _error_from(response: httpx.Response, what: str) -> RegistryError:
    """A `RegistryError` (or the specific subclass) for a failed response about `what`."""
    code, message = None, ""
    try:
        errors = response.json().get("errors") or []
        if errors:
            code, message = errors[0].get("code"), errors[0].get("message", "")
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        pass
    status = response.status_code
    text = (
        f"{what}: HTTP {status}"
        + (f" {code}" if code else "")
        + (f": {message}" if message else "")
    )
    if status == 404 and code == "NAME_UNKNOWN":
        return RepositoryNotFound(text, status=status, code=code)
    return RegistryError(text, status=status, code=code)


class RegistryAuth(httpx.Auth):
    """Answers `WWW-Authenticate` challenges: Basic with the credentials, Bearer with a token.

    Tokens are cached per repository (the scope a registry asks for is per repository), and
    fetched again when a cached one is refused (expired). Our local registries need no auth;
    GitLab's use Bearer tokens from `/jwt/auth`, which this covers.
    """

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self._basic = _basic_header(username, password or "") if username else None
        self._tokens: dict[str, str] = {}
        self._use_basic = False

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        flow = self._flow(request)
        request = next(flow)
        while True:
            response = yield request
            if request.extensions.get(_TOKEN_REQUEST):
                response.read()
            try:
                request = flow.send(response)
            except StopIteration:
                return

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        flow = self._flow(request)
        request = next(flow)
        while True:
            response = yield request
            if request.extensions.get(_TOKEN_REQUEST):
                await response.aread()
            try:
                request = flow.send(response)
            except StopIteration:
                return

    def _flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """The challenge dance, shared by the async and the blocking client.

        Only token responses are read into memory (the callers above read them); httpx's
        `requires_response_body` would read every response, streamed blobs included.
        """
        key = _repository_of(request.url.path)
        self._authorize(request, key)
        response = yield request
        if response.status_code != 401:
            return
        scheme, params = _parse_challenge(response.headers.get("WWW-Authenticate", ""))
        if scheme == "basic" and self._basic is not None:
            self._use_basic = True
        elif scheme == "bearer" and "realm" in params:
            token = _token_from((yield self._token_request(params)))
            if token is None:
                return
            self._tokens[key] = token
        else:
            return
        self._authorize(request, key)
        yield request

    def _authorize(self, request: httpx.Request, key: str) -> None:
        if key in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        elif self._use_basic and self._basic is not None:
            request.headers["Authorization"] = self._basic

    def _token_request(self, params: dict[str, str]) -> httpx.Request:
        query = {k: v for k, v in params.items() if k in ("service", "scope")}
        request = httpx.Request(
            "GET", params["realm"], params=query, extensions={_TOKEN_REQUEST: True}
        )
        if self._basic is not None:
            request.headers["Authorization"] = self._basic
        return request


def _token_from(response: httpx.Response) -> str | None:
    """The token of a token endpoint's answer (`token`, or OAuth2's `access_token`)."""
    if response.status_code != 200:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    token = body.get("token") or body.get("access_token") if isinstance(body, dict) else None
    return token if isinstance(token, str) and token else None


def _basic_header(username: str, password: str) -> str:
    credentials = base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Basic {credentials}"


def _repository_of(path: str) -> str:
    """The repository part of a `/v2/<name>/...` path ("" for `/v2/` and the catalog)."""
    match = re.match(r"/v2/(.+?)/(?:tags|manifests|blobs)/", path)
    return match.group(1) if match else ""


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…"` → ("bearer", {"realm": …, "service": …})."""
    scheme, _, rest = header.strip().partition(" ")
    params = dict(re.findall(r'(\w+)="([^"]*)"', rest))
    return scheme.lower(), params


class RegistryClient:
    """One registry's API over a keep-alive connection pool.

    Use as an async context manager (or call `aclose()`): the pool is the point.
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
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry or RetryPolicy()
        self.chunk_size = chunk_size
        self.supports_tag_deletion: bool | None = None  # learnt on the first DELETE by tag
        options = dict(
            base_url=self.base_url,
            verify=ssl.create_default_context(cafile=str(ca_file) if ca_file else None),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            auth=RegistryAuth(username, password),
            headers={"User-Agent": "gdk-geo"},
            trust_env=False,  # local registries: no environment proxies in the way
        )
        self._http = httpx.AsyncClient(**options)  # type: ignore[arg-type]
        # Blob bytes move on threads (see `copy_blob`), through a blocking client that
        # shares the pool settings, TLS context and credentials.
        self._blocking = httpx.Client(**options)  # type: ignore[arg-type]

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools."""
        await self._http.aclose()
        self._blocking.close()

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    # -- transport -------------------------------------------------------------------------

    async def _send(
        self,
        method: str,
        url: str | httpx.URL,
        *,
        what: str,
        stream: bool = False,
        retry: bool = True,
        **kwargs: object,
    ) -> httpx.Response:
        """Send a request, retrying connection errors and 408/429/5xx with backoff.

        The last retryable response is returned as-is for the caller to turn into an error;
        a connection failure on the last attempt raises `RegistryUnavailable`.
        """
        attempts = self.retry.attempts if retry else 1
        for attempt in range(attempts):
            request = self._http.build_request(method, url, **kwargs)  # type: ignore[arg-type]
            try:
                response = await self._http.send(
                    request, stream=stream, follow_redirects=method in ("GET", "HEAD")
                )
            except httpx.TransportError as exc:
                if _tls_verification_error(exc):
                    raise TLSVerificationFailed(
                        f"{what}: the TLS certificate of {self.base_url} could not be verified "
                        f"({_tls_verification_error(exc)}); pass the CA that signed it as ca_file"
                    ) from exc
                if attempt + 1 >= attempts:
                    raise RegistryUnavailable(
                        f"{what}: the exchange with {self.base_url} failed "
                        f"({exc.__class__.__name__}: {exc})"
                    ) from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if response.status_code in RETRY_STATUSES and attempt + 1 < attempts:
                retry_after = _retry_after(response)
                await response.aclose()
                await asyncio.sleep(self.retry.delay(attempt, retry_after))
                continue
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _paginate(self, path: str, key: str, *, what: str) -> list[str]:
        """Every item of a paginated listing, following `Link: <…>; rel="next"`."""
        items: list[str] = []
        url: str | httpx.URL = f"{path}?n={PAGE_SIZE}"
        seen: set[str] = set()
        while True:
            response = await self._send("GET", url, what=what)
            if response.status_code != 200:
                raise _error_from(response, what)
            try:
                page = response.json().get(key) or []  # Distribution answers null when empty
            except (ValueError, AttributeError) as exc:
                raise RegistryError(f"{what}: the answer is not a JSON listing") from exc
            items.extend(page)
            following = response.links.get("next", {}).get("url")
            if not following:
                return items
            url = response.url.join(following)
            if str(url) in seen:
                raise RegistryError(f"{what}: pagination loops at {url}")
            seen.add(str(url))

    # -- base and listings -----------------------------------------------------------------

    async def ping(self) -> None:
        """Check that the registry speaks API v2 (`GET /v2/`); raise `RegistryError` if not."""
        response = await self._send("GET", "/v2/", what="ping")
        if response.status_code != 200:
            raise _error_from(response, "ping")

    async def catalog(self) -> list[str]:
        """Every repository name the registry lists (all pages)."""
        return await self._paginate("/v2/_catalog", "repositories", what="catalog")

    async def list_tags(self, repo: str) -> list[str]:
        """Every tag of `repo` (all pages); `RepositoryNotFound` if the registry has no `repo`.

        An empty list means the registry answered "no tags", never that listing failed.
        """
        path = f"/v2/{check_repository(repo)}/tags/list"
        tags = await self._paginate(path, "tags", what=f"list tags of {repo}")
        invalid = [tag for tag in tags if not isinstance(tag, str) or not is_tag(tag)]
        if invalid:
            raise RegistryError(
                f"list tags of {repo}: the registry listed invalid tags {invalid[:3]}"
            )
        return tags

    # -- manifests -------------------------------------------------------------------------

    async def head_manifest(self, repo: str, reference: str) -> ManifestRef | None:
        """Digest, media type and size of a tag or digest; None when the registry has none."""
        what = f"HEAD {repo}:{reference}"
        url = f"/v2/{check_repository(repo)}/manifests/{check_reference(reference)}"
        response = await self._send("HEAD", url, what=what, headers={"Accept": ACCEPT_MANIFESTS})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise _error_from(response, what)
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:  # some registries only send it on GET
            manifest = await self.get_manifest(repo, reference)
            return ManifestRef(manifest.digest, manifest.media_type, len(manifest.raw))
        media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
        size = int(response.headers.get("Content-Length", "0") or 0)
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
        url = f"/v2/{check_repository(repo)}/manifests/{check_reference(reference)}"
        response = await self._send("GET", url, what=what, headers={"Accept": ACCEPT_MANIFESTS})
        if response.status_code == 404 and _error_code(response) != "NAME_UNKNOWN":
            raise ManifestNotFound(f"{what}: not found", status=404, code=_error_code(response))
        if response.status_code != 200:
            raise _error_from(response, what)
        raw = response.content
        claimed = response.headers.get("Docker-Content-Digest")
        expected = reference if is_digest(reference) else claimed
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        digest = digest_of(raw, algorithm)
        if expected and digest != expected:
            raise DigestMismatch(f"{what}: bytes hash to {digest}, expected {expected}")
        if claimed and is_digest(reference) and claimed != reference:
            raise DigestMismatch(f"{what}: registry says {claimed}")
        return Manifest(raw, _media_type(response, raw), digest)

    async def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        """Push `raw` unchanged under a tag or digest; return the digest the registry stored.

        The registry refuses a manifest whose blobs or children it lacks, so callers push
        those first and no manifest with missing content is ever visible.
        """
        what = f"PUT manifest {repo}:{reference}"
        url = f"/v2/{check_repository(repo)}/manifests/{check_reference(reference)}"
        response = await self._send(
            "PUT", url, what=what, content=raw, headers={"Content-Type": media_type}
        )
        if response.status_code not in (200, 201):
            raise _error_from(response, what)
        expected = digest_of(raw)
        stored = response.headers.get("Docker-Content-Digest", expected)
        if stored != expected:
            raise DigestMismatch(f"{what}: registry stored {stored}, expected {expected}")
        return stored

    async def delete_manifest(self, repo: str, digest: str) -> bool:
        """Delete a manifest by digest (and, on Distribution, every tag pointing at it).

        False when it was already gone. Needs `storage.delete.enabled` on the registry.
        """
        what = f"DELETE manifest {repo}@{digest}"
        url = f"/v2/{check_repository(repo)}/manifests/{check_digest(digest)}"
        response = await self._send("DELETE", url, what=what)
        if response.status_code == 404:
            return False
        if response.status_code not in (200, 202):
            raise _error_from(response, what)
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
        if not is_tag(tag):
            raise ValueError(f"invalid tag: {tag!r}")
        response = await self._send(
            "DELETE", f"/v2/{check_repository(repo)}/manifests/{tag}", what=what
        )
        code = _error_code(response)
        if response.status_code in (200, 202):
            self.supports_tag_deletion = True
            return True
        if response.status_code == 404 and code != "UNSUPPORTED":
            return False
        if response.status_code == 405 or code in ("DIGEST_INVALID", "UNSUPPORTED"):
            self.supports_tag_deletion = False
            raise TagDeletionUnsupported(
                f"{what}: the registry cannot delete a tag by name (HTTP "
                f"{response.status_code} {code or ''})".rstrip(),
                status=response.status_code,
                code=code,
            )
        raise _error_from(response, what)

    # -- blobs -----------------------------------------------------------------------------

    async def blob_exists(self, repo: str, digest: str) -> bool:
        """Whether `repo` holds the blob (HEAD); a blob in another repository doesn't count."""
        what = f"HEAD blob {repo}@{digest}"
        url = f"/v2/{check_repository(repo)}/blobs/{check_digest(digest)}"
        response = await self._send("HEAD", url, what=what)
        if response.status_code == 200:
            return True
        if response.status_code == 404:
            return False
        raise _error_from(response, what)

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Link a blob `from_repo` already holds into `repo` without copying bytes.

        True when mounted (201). On 202 the registry could not mount and opened an upload
        instead; we cancel that upload and return False so the caller copies.
        """
        what = f"mount {digest} from {from_repo} into {repo}"
        url = f"/v2/{check_repository(repo)}/blobs/uploads/"
        params = {"mount": check_digest(digest), "from": check_repository(from_repo)}
        response = await self._send("POST", url, what=what, params=params)
        if response.status_code == 201:
            return True
        if response.status_code == 202:
            await self._cancel_upload(response)
            return False
        raise _error_from(response, what)

    async def _cancel_upload(self, response: httpx.Response) -> None:
        """Best-effort DELETE of an upload session we won't use (the registry expires it too)."""
        location = response.headers.get("Location")
        if location:
            with suppress(RegistryError):
                await self._send(
                    "DELETE", response.url.join(location), what="cancel upload", retry=False
                )

    @asynccontextmanager
    async def open_blob(
        self, repo: str, digest: str, size: int | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream a blob in bounded chunks, verified against `digest` (and `size` if given).

        The verification raises `DigestMismatch` inside the iteration, before its end, so a
        consumer that forwards the chunks never completes with wrong bytes.
        """
        what = f"GET blob {repo}@{digest}"
        url = f"/v2/{check_repository(repo)}/blobs/{check_digest(digest)}"
        response = await self._send("GET", url, what=what, stream=True)
        try:
            if response.status_code != 200:
                await response.aread()
                if response.status_code == 404 and _error_code(response) != "NAME_UNKNOWN":
                    raise BlobNotFound(f"{what}: not found", status=404)
                raise _error_from(response, what)
            yield verified_chunks(response.aiter_bytes(self.chunk_size), digest, size)
        finally:
            await response.aclose()

    async def upload_blob(
        self, repo: str, digest: str, chunks: AsyncIterator[bytes], size: int | None = None
    ) -> None:
        """Upload a blob from a stream: POST an upload, then one streaming PUT `?digest=`.

        Never retried here (a consumed stream can't be replayed); `copy_blob` restarts.
        """
        what = f"upload blob {repo}@{digest}"
        check_digest(digest)
        start = await self._send("POST", f"/v2/{check_repository(repo)}/blobs/uploads/", what=what)
        if start.status_code != 202 or "Location" not in start.headers:
            raise _error_from(start, what)
        location = start.url.join(start.headers["Location"])
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        try:
            response = await self._send(
                "PUT",
                location.copy_merge_params({"digest": digest}),
                what=what,
                retry=False,
                content=chunks,
                headers=headers,
            )
        except BaseException:
            await self._cancel_upload(start)
            raise
        _check_stored(response, digest, what)


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
            return await asyncio.to_thread(
                _copy_blob_blocking, source, source_repo, target, target_repo, digest, size
            )
        except DigestMismatch:
            raise
        except RegistryError as exc:
            transient = isinstance(exc, RegistryUnavailable) or exc.status in RETRY_STATUSES
            if not transient or attempt + 1 >= policy.attempts:
                raise
        except httpx.TransportError as exc:  # the stream broke mid-body
            if attempt + 1 >= policy.attempts:
                raise RegistryUnavailable(f"copy {digest}: {exc}") from exc
        await asyncio.sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def _copy_blob_blocking(
    source: RegistryClient,
    source_repo: str,
    target: RegistryClient,
    target_repo: str,
    digest: str,
    size: int | None,
) -> int:
    """The bytes of `copy_blob`: GET streamed into a PUT, on a worker thread.

    Threads, not the event loop, because TLS and hashing release the GIL there: on the
    loop every 16 KiB TLS record is a trip through asyncio, and on these 2-core machines
    eight 16 MiB copies took 2.2 s on the loop against 1.5 s on threads. A copy cannot be
    cancelled mid-blob; it ends with its stream (or the client's timeout).
    """
    what = f"copy blob {source_repo}@{digest} to {target_repo}"
    url = f"/v2/{check_repository(source_repo)}/blobs/{check_digest(digest)}"
    with source._blocking.stream("GET", url, follow_redirects=True) as response:
        if response.status_code != 200:
            response.read()
            if response.status_code == 404 and _error_code(response) != "NAME_UNKNOWN":
                raise BlobNotFound(f"{what}: not found on the source", status=404)
            raise _error_from(response, what)
        uploads = f"/v2/{check_repository(target_repo)}/blobs/uploads/"
        start = target._blocking.post(uploads)
        if start.status_code != 202 or "Location" not in start.headers:
            raise _error_from(start, what)
        location = start.url.join(start.headers["Location"])
        check = _BlobCheck(digest, size)
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        try:
            put = target._blocking.put(
                location.copy_merge_params({"digest": digest}),
                content=_verified_blocking(response.iter_bytes(source.chunk_size), check),
                headers=headers,
            )
        except BaseException:
            with suppress(httpx.HTTPError):
                target._blocking.delete(location)  # best effort; the registry expires it too
            raise
    _check_stored(put, digest, what)
    return check.received


def _check_stored(response: httpx.Response, digest: str, what: str) -> None:
    """The end of an upload: 201, and the registry stored the digest we asked for."""
    if response.status_code != 201:
        raise _error_from(response, what)
    stored = response.headers.get("Docker-Content-Digest", digest)
    if stored != digest:
        raise DigestMismatch(f"{what}: registry stored {stored}")


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


def _error_code(response: httpx.Response) -> str | None:
    try:
        errors = response.json().get("errors") or []
        return errors[0].get("code") if errors else None
    except (ValueError, AttributeError, httpx.ResponseNotRead):
        return None


def _media_type(response: httpx.Response, raw: bytes) -> str:
    """The manifest's media type: Content-Type, or the `mediaType` field when that is generic."""
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type in MANIFEST_MEDIA_TYPES:
        return content_type
    try:
        field = json.loads(raw).get("mediaType")
    except (ValueError, AttributeError):
        field = None
    return field or content_type


def _tls_verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The certificate verification error behind a transport error, if that is what it is."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
