"""Free loopback ports, and polling until something happens."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")

WAIT_SECONDS = 60.0  # a deadline for "it happens", never a speed target (that is `make bench`)


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nobody listens on right now, picked by the OS.

    The sockets are held open together while the ports are picked, so the ports differ;
    tests use them instead of the defaults, which a developer's own nodes may hold.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port() -> int:
    """One TCP port nobody listens on right now."""
    return free_ports(1)[0]


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    log: str | Callable[[], str] = "",
    *,
    timeout: float = WAIT_SECONDS,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until it returns something truthy, and return that.

    Transport errors count as "not yet": what is awaited is often a listener that is still
    starting, or a node a test stopped on purpose. At the deadline, fail naming `what`,
    with the tail of `log` (a text, or a function that reads it then).
    """
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (httpx.HTTPError, OSError) as exc:
            last_error = f" (last error: {type(exc).__name__}: {exc})"
        else:
            if value:
                return value
        time.sleep(interval)
    tail = (log() if callable(log) else log)[-4000:]
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{last_error}\n{tail}")
