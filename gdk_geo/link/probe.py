"""The round trip through a link, as a service behind it answers.

A TCP connect through the relay completes at the relay, on this host, before a byte has
crossed the link, so connect time says nothing about the link. What does cross it is a
request and its reply: `round_trip_ms` sends `GET /-/health HTTP/1.0` (the Geo services
answer it; it is plain HTTP) and times from the request's send to the reply's first byte.
That is one round trip of the link plus the service's time to answer (under a millisecond
for the health endpoint on loopback). Any first byte counts, whatever the status: a TLS
port answers a plain request with an error, and the error crossed the link just the same.

The median of three keeps one stalled sample (a "lost" chunk under loss) from being the
answer.
"""

from __future__ import annotations

import socket
import statistics
import time

REQUEST = b"GET /-/health HTTP/1.0\r\nHost: %b\r\nConnection: close\r\n\r\n"
SAMPLES = 3


def _sample(host: str, port: int, timeout: float) -> float | None:
    """One request's time to first byte, in ms; None when nothing answered in time."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            started = time.perf_counter()
            sock.sendall(REQUEST % host.encode("idna"))
            first = sock.recv(1)
            answered = time.perf_counter()
    except (OSError, UnicodeError):
        return None
    return (answered - started) * 1000 if first else None


def round_trip_ms(host: str, port: int, timeout: float = 5.0) -> float | None:
    """The median round trip, in ms, of `SAMPLES` requests to `host:port` (a relay's
    listener, or a service directly); None when none was answered within `timeout` each."""
    samples = [s for _ in range(SAMPLES) if (s := _sample(host, port, timeout)) is not None]
    return statistics.median(samples) if samples else None
