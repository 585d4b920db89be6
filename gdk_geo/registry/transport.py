"""The client's transport: one registry's connection pool, bounded retries, auth challenges.

`Transport` sends a request and retries what a retry can fix (connection errors, 408, 429,
5xx) with the shared `Backoff`; it answers a registry's `WWW-Authenticate` challenge once
(`gdk_geo.registry.auth`). Answers come back whole (`Reply`, everything but blob bytes) or
open for streaming. The Registry API itself is `gdk_geo.registry.client`.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
from yarl import URL

from gdk_geo.registry import http
from gdk_geo.registry.auth import MintedTokens, RegistryAuth, repository_of
from gdk_geo.registry.backoff import Backoff
from gdk_geo.registry.errors import (
    RegistryError,
    RegistryUnavailable,
    TLSVerificationFailed,
    TokenRefused,
)
from gdk_geo.registry.replies import (
    RETRY_STATUSES,
    Reply,
    error_code,
    read_reply,
    retry_after_seconds,
    unread,
)

R = TypeVar("R", Reply, aiohttp.ClientResponse)

# Timeouts sized for a WAN between sites (issue #27; tests/e2e/test_wan_reliability.py runs
# syncs over a 300 ms round trip, a 20 Mbit/s link and a partition):
# - connect: a new connection's TCP and TLS handshakes, two round trips (0.6 s at 300 ms),
#   with room for retransmitted segments; past it the peer is down and `RetryPolicy` acts;
# - read (the client's `timeout`): the longest silence within one answer, not its length,
#   so a blob that streams for minutes at a low rate completes, and a link that stalls
#   for less than that (a short partition) resumes where it was;
# - no pool timeout (`ClientTimeout.connect` stays None): a request waiting for a free
#   connection waits as long as the transfers ahead of it, which a slow link lengthens.
CONNECT_SECONDS = 5.0


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded attempts, with the shared backoff between them."""

    attempts: int = 4
    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.2, cap=5.0))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0-based)."""
        return self.backoff.delay(attempt, retry_after)


Body = bytes | AsyncIterator[bytes] | None


class Transport:
    """One registry's keep-alive pool (aiohttp), opened on first use inside the event loop.

    aiohttp rather than httpx: a no-op resync is hundreds of tiny requests, and the client's
    own CPU per request decides how long it takes (bench/RESULTS.md measures both).
    """

    def __init__(
        self,
        base_url: str,
        *,
        ca_file: Path | None,
        max_connections: int,
        timeout: float,
        retry: RetryPolicy,
        auth: RegistryAuth,
        tokens: MintedTokens | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self._auth = auth
        self._tokens = tokens  # minted by us: sent up front, no challenge round trip
        self._http = http.LazySession(
            ca_file=ca_file,
            max_connections=max_connections,
            # No total: a big blob takes as long as it takes; a stalled read or connect fails.
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=min(timeout, CONNECT_SECONDS), sock_read=timeout
            ),
            # Bytes exactly as stored: a decompressed blob would not match its digest.
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    def url(self, path_and_query: str) -> URL:
        """An absolute URL for a path built by `gdk_geo.registry.reference` (escaped there)."""
        return URL(self.base_url + path_and_query, encoded=True)

    async def send(
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
        return await self._attempts(method, url, read_reply, what, data, headers, retry)

    async def open(self, method: str, url: URL, *, what: str) -> aiohttp.ClientResponse:
        """A request whose answer is streamed: the caller reads it, then releases it."""
        return await self._attempts(method, url, unread, what, None, None, True)

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
                raise_unretryable(exc, what, self.base_url)
                if attempt + 1 >= attempts:
                    raise RegistryUnavailable(
                        f"{what}: the exchange with {self.base_url} failed "
                        f"({exc.__class__.__name__}: {exc})"
                    ) from exc
                await asyncio.sleep(self.retry.delay(attempt))
                continue
            if answer.status == 401 and self._tokens is not None:
                raise await self._token_refused(answer, what)
            if answer.status in RETRY_STATUSES and attempt + 1 < attempts:
                retry_after = retry_after_seconds(answer.headers)
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
        repository = repository_of(url.path)
        session = self._http()

        async def send() -> aiohttp.ClientResponse:
            credentials = (
                self._tokens.header(method, url)
                if self._tokens is not None
                else self._auth.header(repository)
            )
            return await session.request(
                method,
                url,
                data=data,
                headers={**headers, **credentials},
                allow_redirects=method in ("GET", "HEAD"),  # blob GETs may redirect to storage
            )

        response = await send()
        replayable = data is None or isinstance(data, bytes)
        if response.status != 401:
            return response
        if self._tokens is not None:  # refused (expired, rotated key): re-mint once
            self._tokens.forget(method, url)
            if not replayable:
                return response  # the caller restarts the stream with a fresh token
            response.release()
            return await send()
        if not replayable:
            return response
        challenge = response.headers.get("WWW-Authenticate", "")
        if not await self._auth.answer(challenge, repository, self._fetch_token):
            return response  # nothing to answer with: the caller sees the 401
        response.release()
        return await send()

    async def _token_refused(
        self, answer: Reply | aiohttp.ClientResponse, what: str
    ) -> TokenRefused:
        """Why a minted token was refused, in words that lead to the check that finds out."""
        reply = await read_reply(answer) if isinstance(answer, aiohttp.ClientResponse) else answer
        code = error_code(reply)
        return TokenRefused(
            f"{what}: the registry at {self.base_url} refused the Geo worker's token "
            f"(HTTP 401{' ' + code if code else ''}): it does not trust the signing key in "
            "localhost.key; `invoke geo.check` tells whether the nodes' signing pairs "
            "differ or the registry needs a restart",
            status=401,
            code=code,
        )

    async def _fetch_token(self, url: URL, headers: dict[str, str]) -> Reply:
        return await read_reply(await self._http().get(url, headers=headers))


def raise_unretryable(exc: BaseException, what: str, base_url: str) -> None:
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
