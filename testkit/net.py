"""Free loopback ports, polling until something happens, and a throttled loopback proxy."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import threading
import time
from asyncio import StreamReader, StreamWriter
from collections.abc import Callable
from typing import TypeVar

import httpx

T = TypeVar("T")

WAIT_SECONDS = 60.0  # a deadline for "it happens", never a speed target (that is `make bench`)


# Ports are handed out from a band of their own per test process, below the kernel's
# ephemeral range (32768 and up on Linux), walking forward through the band:
# - a port picked by the kernel (bind to 0) is one it also gives to outgoing connections,
#   and to the next caller in any process, so a port one test freed (a stopped worker) was
#   soon another's, run in parallel (`pytest -n`), while the first test still meant it;
# - a band per pytest-xdist worker (`PYTEST_XDIST_WORKER`: gw0, gw1, ...) keeps parallel
#   workers apart, and walking forward means a process reuses a port only after its whole
#   band; the start is random, so two runs side by side (a benchmark beside the tests)
#   rarely walk together, and each port is still tried before it is handed out.
BAND_START, BAND_SIZE, BANDS = 10_000, 1_500, 15
_next_in_band: list[int] = []


def _band() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker.startswith("gw") and worker[2:].isdigit() else 0
    start = BAND_START + (index % BANDS) * BAND_SIZE
    return range(start, start + BAND_SIZE)


def _is_free(port: int) -> bool:
    """Nobody listens on (or holds) `port` on loopback now."""
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` distinct TCP ports nobody listens on right now, from this process's band.

    Tests use them instead of the defaults, which a developer's own nodes may hold.
    """
    band = _band()
    if not _next_in_band:
        _next_in_band.append(random.randrange(len(band)))
    picked: list[int] = []
    for _ in range(len(band)):
        port = band[_next_in_band[0] % len(band)]
        _next_in_band[0] += 1
        if _is_free(port):
            picked.append(port)
            if len(picked) == count:
                return picked
    raise RuntimeError(f"fewer than {count} free ports in {band.start}-{band.stop - 1}")


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


class ThrottledProxy:
    """A TCP proxy on a free loopback port in front of `target_port`, passing at most
    `rate` bytes a second back from the target to its clients (all connections together),
    so that a pull through it takes at least its size ÷ `rate`, whatever the machine.

    TLS passes through untouched: a client verifies the target's certificate, which names
    the host and not the port, as if it spoke to the target itself. Use it as a context
    manager; it serves from a thread of its own until the block ends.
    """

    CHUNK = 64 * 1024

    def __init__(self, target_port: int, rate: float, host: str = "127.0.0.1") -> None:
        self.target_port, self.rate, self.host = target_port, rate, host
        self.port = free_port()
        self.bytes_down = 0
        self._next_send = 0.0
        self._loop = asyncio.new_event_loop()
        self._listening = threading.Event()
        self._stop: asyncio.Event | None = None
        self._connections: set[asyncio.Task] = set()
        self._thread = threading.Thread(target=self._run, name="throttled-proxy", daemon=True)

    def __enter__(self) -> ThrottledProxy:
        self._thread.start()
        if not self._listening.wait(10):
            raise RuntimeError(f"the throttled proxy did not listen on {self.port}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._connection, self.host, self.port)
        self._listening.set()
        async with server:
            await self._stop.wait()
            server.close()
            for connection in self._connections:  # a client still connected (keep-alive)
                connection.cancel()
            await asyncio.gather(*self._connections, return_exceptions=True)

    async def _connection(self, client_r: StreamReader, client_w: StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            target_r, target_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            client_w.close()
        else:
            await asyncio.gather(
                self._pipe(client_r, target_w, paced=False),
                self._pipe(target_r, client_w, paced=True),
            )
        finally:
            self._connections.discard(task)

    async def _pipe(self, source: StreamReader, sink: StreamWriter, *, paced: bool) -> None:
        try:
            while chunk := await source.read(self.CHUNK):
                if paced:
                    await self._pace(len(chunk))
                    self.bytes_down += len(chunk)
                sink.write(chunk)
                await sink.drain()
        except OSError:
            pass
        finally:
            sink.close()

    async def _pace(self, size: int) -> None:
        """Hold a chunk back until the rate allows it: the throttle itself, so waiting here
        is the point (no event stands behind it); unused time is not saved up."""
        now = self._loop.time()
        start = max(now, self._next_send)
        self._next_send = start + size / self.rate
        if start > now:
            await asyncio.sleep(start - now)
