"""Health probes: a registry answers `GET /v2/` over verified TLS; a service its `/-/health`.

The timeout holds for each phase on its own (httpx times the connect, the TLS handshake
and the read apart), and each phase is one round trip: the 2 s default is six of a 300 ms
WAN, what `geo.check` needs to probe the primary through a shaped link (`geo.link`), and
`geo.status`'s 1 s still three, so that it stays quick when a node is down.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from gdk_geo.registry import http


@dataclass(frozen=True)
class Probe:
    """The outcome of one health probe, with a reason when it failed."""

    ok: bool
    detail: str


def probe_registry(url: str, ca_file: Path, timeout: float = 2.0) -> Probe:
    """Verified against the node's certificate bundle (leaf + CA); verification is never off."""
    try:
        with http.httpx_client(ca_file=ca_file, timeout=timeout) as client:
            response = client.get(f"{url}/v2/")
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        return Probe(False, f"{type(exc).__name__}: {exc}")
    # 200, or 401 from a registry with auth, both mean the API is up.
    return Probe(response.status_code in (200, 401), f"HTTP {response.status_code}")


def probe_service(url: str, timeout: float = 2.0) -> Probe:
    try:
        with http.httpx_client(timeout=timeout) as client:
            response = client.get(f"{url}/-/health")
    except (httpx.HTTPError, OSError) as exc:
        return Probe(False, f"{type(exc).__name__}: {exc}")
    return Probe(response.status_code == 200, f"HTTP {response.status_code}")


def wait_until(check: Callable[[], Probe], timeout: float, interval: float = 0.1) -> Probe:
    """Poll `check` until it passes or `timeout` seconds have gone; return the last probe."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result.ok or time.monotonic() >= deadline:
            return result
        time.sleep(interval)
