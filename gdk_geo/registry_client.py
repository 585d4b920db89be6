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
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy, MultiDictProxy
from yarl import URL

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
R = TypeVar("R", "Reply", aiohttp.ClientResponse)


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
    """Digest and size of a blob's bytes, checked while they pass."""

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


@dataclass(frozen=True)
class Reply:
    """A registry's whole answer to a request whose body is small (everything but blobs)."""

    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: URL
    links: MultiDictProxy[MultiDictProxy[str | URL]]

    def json(self) -> object:
        return json.loads(self.body)


def _error_from(reply: Reply, what: str) -> RegistryError:
    """A `RegistryError` (or the specific subclass) for a failed answer about `what`."""
    code, message = _error_code_and_message(reply)
    text = (
        f"{what}: HTTP {reply.status}"
        + (f" {code}" if code else "")
        + (f": {message}" if message else "")
    )
    if reply.status == 404 and code == "NAME_UNKNOWN":
        return RepositoryNotFound(text, status=reply.status, code=code)
    return RegistryError(text, status=reply.status, code=code)


def _error_code_and_message(reply: Reply) -> tuple[str | None, str]:
    """The first entry of the registry's `{"errors": [...]}` body, if it sent one."""
    try:
        errors = reply.json().get("errors") or []  # type: ignore[union-attr]
        first = errors[0] if errors else {}
        return first.get("code"), first.get("message", "")
    except (ValueError, AttributeError, IndexError, TypeError):
        return None, ""


def _error_code(reply: Reply) -> str | None:
    return _error_code_and_message(reply)[0]


class RegistryAuth:
    """Answers `WWW-Authenticate` challenges: Basic with the credentials, Bearer with a token.

    Tokens are cached per repository (the scope a registry asks for is per repository), and
    fetched again when a cached one is refused (expired). Our local registries need no auth;
    GitLab's use Bearer tokens from `/jwt/auth`, which this covers.
    """

    def __init__(self, username: str | None = None, password: str | None = None) -> None:
        self._basic = _basic_header(username, password or "") if username else None
        self._tokens: dict[str, str] = {}
        self._use_basic = False

    def header(self, repository: str) -> dict[str, str]:
        """The `Authorization` header to send for `repository`, if we have one."""
        if repository in self._tokens:
            return {"Authorization": f"Bearer {self._tokens[repository]}"}
        if self._use_basic and self._basic is not None:
            return {"Authorization": self._basic}
        return {}

    async def answer(self, challenge: str, repository: str, fetch: TokenFetch) -> bool:
        """Learn how to answer `challenge`; True when the request is worth sending again.

        `fetch` GETs a token endpoint (an absolute URL, with the Basic credentials if any).
        """
        scheme, params = _parse_challenge(challenge)
        if scheme == "basic" and self._basic is not None:
            self._use_basic = True
            return True
        if scheme == "bearer" and "realm" in params:
            query = {k: v for k, v in params.items() if k in ("service", "scope")}
            url = _with_query(URL(params["realm"]), **query)
            headers = {"Authorization": self._basic} if self._basic is not None else {}
            token = _token_from(await fetch(url, headers))
            if token is None:
                return False
            self._tokens[repository] = token
            return True
        return False


TokenFetch = Callable[[URL, dict[str, str]], Awaitable[Reply]]


def _token_from(reply: Reply) -> str | None:
    """The token of a token endpoint's answer (`token`, or OAuth2's `access_token`)."""
    if reply.status != 200:
        return None
    try:
        body = reply.json()
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


Body = bytes | AsyncIterator[bytes] | None


class RegistryClient:
    """One registry's API over a keep-alive connection pool (aiohttp).

    Use as an async context manager (or call `aclose()`): the pool is the point. The
    session is opened on first use, inside the event loop that uses it.

    aiohttp rather than httpx: a no-op resync is hundreds of tiny requests, and the client's
    own CPU per request was the bottleneck on these 2-core machines (client CPU per HEAD over
    kept-alive TLS: 0.33 ms against httpx's 1.58 ms, `python -m bench requests`). Blob
    bytes stream on the event loop too, in `chunk_size` reads.
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
        self._tls = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self._max_connections = max_connections
        # No total: a big blob takes as long as it takes; a stalled read or connect fails.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=min(timeout, 5.0), sock_read=timeout
        )
        self._auth = RegistryAuth(username, password)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    # -- transport -------------------------------------------------------------------------

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections, ssl=self._tls),
                timeout=self._timeout,
                headers={"User-Agent": "gdk-geo"},
                # Bytes exactly as stored: a decompressed blob would not match its digest.
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),
                trust_env=False,  # local registries: no environment proxies in the way
            )
        return self._session

    def _url(self, path_and_query: str) -> URL:
        """An absolute URL for a path we built (names and references are checked, so the
        path needs no quoting)."""
        return URL(self.base_url + path_and_query, encoded=True)

    async def _send(
        self,
        method: str,
        url: URL,
        *,
        what: str,
        data: Body = None,
        headers: dict[str, str] | None = None,
        retry: bool = True,
    ) -> Reply:
        """A request whose answer is small: read whole, the connection handed back."""
        return await self._attempts(method, url, _read, what, data, headers, retry)

    async def _open(self, method: str, url: URL, *, what: str) -> aiohttp.ClientResponse:
        """A request whose answer is streamed: the caller reads it, then releases it."""
        return await self._attempts(method, url, _unread, what, None, None, True)

    async def _attempts(
        self,
        method: str,
        url: URL,
        finish: Callable[[aiohttp.ClientResponse], Awaitable[R]],
        what: str,
        data: Body,
        headers: dict[str, str] | None,
        retry: bool,
    ) -> R:
        """Send a request, retrying connection errors and 408/429/5xx with backoff.

        The last retryable answer is returned as-is for the caller to turn into an error; a
        connection failure on the last attempt raises `RegistryUnavailable`. A streamed body
        can't be replayed, so callers pass `retry=False` with one.
        """
        attempts = self.retry.attempts if retry else 1
        for attempt in range(attempts):
            try:
                answer = await finish(await self._exchange(method, url, data, headers or {}))
            except (aiohttp.ClientError, OSError) as exc:
                _raise_verification_or_body_error(exc, what, self.base_url)
                if attempt + 1 >= attempts:
                    raise RegistryUnavailable(
                        f"{what}: the exchange with {self.base_url} failed "
                        f"({exc.__class__.__name__}: {exc})"
                    ) from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if answer.status in RETRY_STATUSES and attempt + 1 < attempts:
                retry_after = _retry_after(answer.headers)
                if isinstance(answer, aiohttp.ClientResponse):
                    answer.release()
                await asyncio.sleep(self.retry.delay(attempt, retry_after))
                continue
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _exchange(
        self, method: str, url: URL, data: Body, headers: dict[str, str]
    ) -> aiohttp.ClientResponse:
        """One request, answering an auth challenge once if the registry sends one."""
        repository = _repository_of(url.path)
        http = self._http()

        async def send() -> aiohttp.ClientResponse:
            return await http.request(
                method,
                url,
                data=data,
                headers={**headers, **self._auth.header(repository)},
                allow_redirects=method in ("GET", "HEAD"),  # blob GETs may redirect to storage
            )

        response = await send()
        replayable = data is None or isinstance(data, bytes)
        if response.status != 401 or not replayable:
            return response
        challenge = response.headers.get("WWW-Authenticate", "")
        if not await self._auth.answer(challenge, repository, self._fetch_token):
            return response  # nothing to answer with: the caller sees the 401
        response.release()
        return await send()

    async def _fetch_token(self, url: URL, headers: dict[str, str]) -> Reply:
        return await _read(await self._http().get(url, headers=headers))

    async def _paginate(self, path: str, key: str, *, what: str) -> list[str]:
        """Every item of a paginated listing, following `Link: <…>; rel="next"`."""
        items: list[str] = []
        url = self._url(f"{path}?n={PAGE_SIZE}")
        seen: set[str] = set()
        while True:
            reply = await self._send("GET", url, what=what)
            if reply.status != 200:
                raise _error_from(reply, what)
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
        reply = await self._send("GET", self._url("/v2/"), what="ping")
        if reply.status != 200:
            raise _error_from(reply, "ping")

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

    def _manifest_url(self, repo: str, reference: str) -> URL:
        return self._url(f"/v2/{check_repository(repo)}/manifests/{check_reference(reference)}")

    async def head_manifest(self, repo: str, reference: str) -> ManifestRef | None:
        """Digest, media type and size of a tag or digest; None when the registry has none."""
        what = f"HEAD {repo}:{reference}"
        reply = await self._send(
            "HEAD", self._manifest_url(repo, reference), what=what, headers=_ACCEPT
        )
        if reply.status == 404:
            return None
        if reply.status != 200:
            raise _error_from(reply, what)
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
        reply = await self._send(
            "GET", self._manifest_url(repo, reference), what=what, headers=_ACCEPT
        )
        code = _error_code(reply) if reply.status == 404 else None
        if reply.status == 404 and code != "NAME_UNKNOWN":
            raise ManifestNotFound(f"{what}: not found", status=404, code=code)
        if reply.status != 200:
            raise _error_from(reply, what)
        raw = reply.body
        claimed = reply.headers.get("Docker-Content-Digest")
        expected = reference if is_digest(reference) else claimed
        algorithm = expected.split(":", 1)[0] if expected else "sha256"
        digest = digest_of(raw, algorithm)
        if expected and digest != expected:
            raise DigestMismatch(f"{what}: bytes hash to {digest}, expected {expected}")
        if claimed and is_digest(reference) and claimed != reference:
            raise DigestMismatch(f"{what}: registry says {claimed}")
        return Manifest(raw, _media_type(reply, raw), digest)

    async def put_manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        """Push `raw` unchanged under a tag or digest; return the digest the registry stored.

        The registry refuses a manifest whose blobs or children it lacks, so callers push
        those first and no manifest with missing content is ever visible.
        """
        what = f"PUT manifest {repo}:{reference}"
        reply = await self._send(
            "PUT",
            self._manifest_url(repo, reference),
            what=what,
            data=raw,
            headers={"Content-Type": media_type},
        )
        if reply.status not in (200, 201):
            raise _error_from(reply, what)
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
        url = self._url(f"/v2/{check_repository(repo)}/manifests/{check_digest(digest)}")
        reply = await self._send("DELETE", url, what=what)
        if reply.status == 404:
            return False
        if reply.status not in (200, 202):
            raise _error_from(reply, what)
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
        url = self._url(f"/v2/{check_repository(repo)}/manifests/{tag}")
        reply = await self._send("DELETE", url, what=what)
        code = _error_code(reply)
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
        raise _error_from(reply, what)

    # -- blobs -----------------------------------------------------------------------------

    def _blob_url(self, repo: str, digest: str) -> URL:
        return self._url(f"/v2/{check_repository(repo)}/blobs/{check_digest(digest)}")

    async def blob_exists(self, repo: str, digest: str) -> bool:
        """Whether `repo` holds the blob (HEAD); a blob in another repository doesn't count."""
        what = f"HEAD blob {repo}@{digest}"
        reply = await self._send("HEAD", self._blob_url(repo, digest), what=what)
        if reply.status == 200:
            return True
        if reply.status == 404:
            return False
        raise _error_from(reply, what)

    async def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Link a blob `from_repo` already holds into `repo` without copying bytes.

        True when mounted (201). On 202 the registry could not mount and opened an upload
        instead; we cancel that upload and return False so the caller copies.
        """
        what = f"mount {digest} from {from_repo} into {repo}"
        query = urlencode({"mount": check_digest(digest), "from": check_repository(from_repo)})
        url = self._url(f"/v2/{check_repository(repo)}/blobs/uploads/?{query}")
        reply = await self._send("POST", url, what=what)
        if reply.status == 201:
            return True
        if reply.status == 202:
            await self._cancel_upload(reply)
            return False
        raise _error_from(reply, what)

    def _upload_location(self, reply: Reply) -> URL | None:
        location = reply.headers.get("Location")
        return reply.url.join(URL(location, encoded=True)) if location else None

    async def _cancel_upload(self, reply: Reply) -> None:
        """Best-effort DELETE of an upload session we won't use (the registry expires it too)."""
        location = self._upload_location(reply)
        if location is not None:
            with suppress(RegistryError):
                await self._send("DELETE", location, what="cancel upload", retry=False)

    @asynccontextmanager
    async def open_blob(
        self, repo: str, digest: str, size: int | None = None
    ) -> AsyncIterator[AsyncIterator[bytes]]:
        """Stream a blob in bounded chunks, verified against `digest` (and `size` if given).

        The verification raises `DigestMismatch` inside the iteration, before its end, so a
        consumer that forwards the chunks never completes with wrong bytes.
        """
        what = f"GET blob {repo}@{digest}"
        response = await self._open("GET", self._blob_url(repo, digest), what=what)
        try:
            if response.status != 200:
                reply = await _read(response)
                if reply.status == 404 and _error_code(reply) != "NAME_UNKNOWN":
                    raise BlobNotFound(f"{what}: not found", status=404)
                raise _error_from(reply, what)
            chunks = response.content.iter_chunked(self.chunk_size)
            yield verified_chunks(chunks, digest, size)
        finally:
            response.release()  # back to the pool if read to the end, else closed

    async def upload_blob(
        self, repo: str, digest: str, chunks: AsyncIterator[bytes], size: int | None = None
    ) -> None:
        """Upload a blob from a stream: POST an upload, then one streaming PUT `?digest=`.

        Never retried here (a consumed stream can't be replayed); `copy_blob` restarts.
        """
        what = f"upload blob {repo}@{digest}"
        check_digest(digest)
        uploads = self._url(f"/v2/{check_repository(repo)}/blobs/uploads/")
        start = await self._send("POST", uploads, what=what)
        location = self._upload_location(start)
        if start.status != 202 or location is None:
            raise _error_from(start, what)
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)  # else aiohttp sends it chunked
        try:
            reply = await self._send(
                "PUT",
                _with_query(location, digest=digest),
                what=what,
                retry=False,
                data=chunks,
                headers=headers,
            )
        except BaseException:
            await self._cancel_upload(start)
            raise
        _check_stored(reply, digest, what)


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


def _check_stored(reply: Reply, digest: str, what: str) -> None:
    """The end of an upload: 201, and the registry stored the digest we asked for."""
    if reply.status != 201:
        raise _error_from(reply, what)
    stored = reply.headers.get("Docker-Content-Digest", digest)
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


async def _unread(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
    return response


async def _read(response: aiohttp.ClientResponse) -> Reply:
    """The whole answer, with the connection handed back to the pool."""
    try:
        body = await response.read()
        return Reply(response.status, response.headers, body, response.url, response.links)
    finally:
        response.release()


def _with_query(url: URL, **params: str) -> URL:
    """`url` with `params` appended to its query, leaving the existing (opaque) part as sent.

    An upload's Location carries the registry's own `_state` token; re-encoding it is not
    ours to do.
    """
    if not params:
        return url
    separator = "&" if url.raw_query_string else "?"
    return URL(f"{url}{separator}{urlencode(params)}", encoded=True)


def _media_type(reply: Reply, raw: bytes) -> str:
    """The manifest's media type: Content-Type, or the `mediaType` field when that is generic."""
    content_type = reply.headers.get("Content-Type", "").split(";")[0].strip()
    if content_type in MANIFEST_MEDIA_TYPES:
        return content_type
    try:
        field = json.loads(raw).get("mediaType")
    except (ValueError, AttributeError):
        field = None
    return field or content_type


def _raise_verification_or_body_error(exc: BaseException, what: str, base_url: str) -> None:
    """Raise at once what retrying can't fix: an unverifiable certificate, or our own body's
    verdict (a `RegistryError` such as `DigestMismatch` raised while aiohttp sent it)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            raise TLSVerificationFailed(
                f"{what}: the TLS certificate of {base_url} could not be verified "
                f"({seen}); pass the CA that signed it as ca_file"
            ) from exc
        if isinstance(seen, RegistryError):
            raise seen
        seen = seen.__cause__ or seen.__context__


def _retry_after(headers: CIMultiDictProxy[str]) -> float | None:
    value = headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None


_ACCEPT = {"Accept": ACCEPT_MANIFESTS}
