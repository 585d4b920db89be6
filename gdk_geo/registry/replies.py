"""A registry's answers: read whole (`Reply`), their error bodies, and query building."""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from multidict import CIMultiDictProxy, MultiDictProxy
from yarl import URL

from gdk_geo.registry.errors import DigestMismatch, RegistryError, RepositoryNotFound

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


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


def error_from(reply: Reply, what: str) -> RegistryError:
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


def error_code(reply: Reply) -> str | None:
    return _error_code_and_message(reply)[0]


def check_stored(reply: Reply, digest: str, what: str) -> None:
    """The end of an upload: 201, and the registry stored the digest we asked for.

    A registry that hashed the bytes to something else than `?digest=` answers 400
    DIGEST_INVALID and stores nothing: the source sent wrong bytes."""
    if reply.status == 400 and error_code(reply) == "DIGEST_INVALID":
        raise DigestMismatch(
            f"{what}: the content hashes to another digest (the registry refused it, "
            "DIGEST_INVALID)",
            status=400,
            code="DIGEST_INVALID",
        )
    if reply.status != 201:
        raise error_from(reply, what)
    stored = reply.headers.get("Docker-Content-Digest", digest)
    if stored != digest:
        raise DigestMismatch(f"{what}: registry stored {stored}")


async def unread(response: aiohttp.ClientResponse) -> aiohttp.ClientResponse:
    return response


async def read_reply(response: aiohttp.ClientResponse) -> Reply:
    """The whole answer, with the connection handed back to the pool."""
    try:
        body = await response.read()
        return Reply(response.status, response.headers, body, response.url, response.links)
    finally:
        response.release()


def with_query(url: URL, **params: str) -> URL:
    """`url` with `params` appended to its query, leaving the existing (opaque) part as sent.

    An upload's Location carries the registry's own `_state` token; re-encoding it is not
    ours to do.
    """
    if not params:
        return url
    separator = "&" if url.raw_query_string else "?"
    return URL(f"{url}{separator}{urlencode(params)}", encoded=True)


def retry_after_seconds(headers: CIMultiDictProxy[str]) -> float | None:
    value = headers.get("Retry-After", "")
    return float(value) if value.isdigit() else None
