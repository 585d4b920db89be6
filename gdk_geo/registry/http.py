"""Every HTTP client gdk-geo opens, built in one place: TLS, proxies, timeouts, user agent.

The services talk through aiohttp (`aiohttp_session`: the registry client, the worker's event
feed), the CLI through httpx (`httpx_client`, `httpx_async_client`: health probes, checks,
status). Both get the same TLS context (`tls_context`: verified against the node's CA file,
or the system store when there is none; verification is never turned off) and ignore the
environment's proxy settings: every peer is a local node, and a proxy in between would
only get in the way.

aiohttp and httpx are imported when a client is built, so a process that needs one of them
does not pay for loading the other.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import aiohttp
    import httpx

USER_AGENT = "gdk-geo"


def tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A verifying client context: `ca_file` (the node's bundle) if given, else the system store."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


def ca_for(url: str, ca_file: Path | None) -> Path | None:
    """The CA file to verify `url` with: `ca_file` for https, None for plain http."""
    return ca_file if url.lower().startswith("https://") else None


def aiohttp_session(
    *,
    ca_file: Path | None = None,
    max_connections: int = 100,
    timeout: aiohttp.ClientTimeout | None = None,
    headers: dict[str, str] | None = None,
    **options: Any,
) -> aiohttp.ClientSession:
    """A keep-alive aiohttp session; call it inside the event loop that will use it.

    `options` go to `aiohttp.ClientSession` as they are (the registry client turns off
    decompression, for instance).
    """
    import aiohttp

    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, ssl=tls_context(ca_file)),
        timeout=timeout or aiohttp.ClientTimeout(total=30.0),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        trust_env=False,
        **options,
    )


class LazySession:
    """An `aiohttp_session` opened on first use, inside the event loop that uses it.

    Call it for the session; `aclose` closes it (and the next call opens a new one).
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._session: aiohttp.ClientSession | None = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp_session(**self._options)
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _httpx_options(
    ca_file: Path | None, timeout: float | httpx.Timeout, headers: dict[str, str] | None
) -> dict[str, Any]:
    return {
        "verify": tls_context(ca_file),
        "timeout": timeout,
        "headers": {"User-Agent": USER_AGENT, **(headers or {})},
        "trust_env": False,
    }


def httpx_client(
    *,
    ca_file: Path | None = None,
    timeout: float | httpx.Timeout = 5.0,
    headers: dict[str, str] | None = None,
) -> httpx.Client:
    """A blocking httpx client for the CLI; use it as a context manager."""
    import httpx

    return httpx.Client(**_httpx_options(ca_file, timeout, headers))


def httpx_async_client(
    *,
    ca_file: Path | None = None,
    timeout: float | httpx.Timeout = 5.0,
    headers: dict[str, str] | None = None,
) -> httpx.AsyncClient:
    """An async httpx client for the CLI's async steps; use it as an async context manager."""
    import httpx

    return httpx.AsyncClient(**_httpx_options(ca_file, timeout, headers))
