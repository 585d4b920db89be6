"""A link relay under test, and a small service behind it on a free loopback port.

`LoopbackService` speaks just enough to exercise a link: its first line picks the mode
(`ECHO`, `SEND <n>`, `SINK <n>`, or an HTTP request, answered `200 ok` and closed, as a Geo
service's `/-/health` would). `LinkRig` writes a relay's spec, starts it with
`gdk_geo.link.process`, reshapes it and waits for the relay's own stats to say the new
shaping is in force: a reload is an event the relay reports, not a delay to sleep through.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdk_geo.link import process
from gdk_geo.link.shaping import Shaping
from gdk_geo.link.spec import LinkSpec, Route, write_spec
from testkit.net import free_port, wait_for

HOST = "127.0.0.1"
BLOCK = b"x" * (1 << 20)


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        stream = self.request.makefile("rb")  # the one reader: it may buffer past a line
        try:
            line = stream.readline()
            if line.startswith(b"GET "):
                while stream.readline() not in (b"\r\n", b"\n", b""):
                    pass
                self.request.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            elif line == b"ECHO\n":
                self.request.sendall(b"\n")
                while data := stream.read1(1 << 16):
                    self.request.sendall(data)
            elif line.startswith(b"SEND "):
                left = int(line.split()[1])
                while left > 0:
                    self.request.sendall(BLOCK[: min(left, len(BLOCK))])
                    left -= len(BLOCK)
            elif line.startswith(b"SINK "):
                wanted, got = int(line.split()[1]), 0
                while got < wanted and (data := stream.read1(1 << 20)):
                    got += len(data)
                self.request.sendall(b"%d\n" % got)
        except OSError:
            pass  # the relay reset the connection: what some tests do on purpose


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@contextmanager
def loopback_service() -> Iterator[int]:
    """The service on a free loopback port, served from a thread; yields the port."""
    server = _Server((HOST, free_port()), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def echo_connection(port: int, timeout: float = 10.0) -> socket.socket:
    """A connection in ECHO mode, its greeting read: it is established end to end."""
    sock = socket.create_connection((HOST, port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"ECHO\n")
    assert sock.recv(1) == b"\n"
    return sock


def receive_exactly(sock: socket.socket, size: int) -> bytes:
    """`size` bytes from `sock` (fewer only when it ends first)."""
    data = b""
    while len(data) < size and (chunk := sock.recv(size - len(data))):
        data += chunk
    return data


def refused(port: int) -> bool:
    """Whether a new connection to `port` ends (reset or closed) without a byte of data."""
    try:
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(b"ECHO\n")
            return sock.recv(1) == b""
    except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
        return True


@dataclass
class LinkRig:
    """One relay's files under `directory`, its routes, and the shaping last asked for."""

    directory: Path
    routes: list[Route]
    shaping: Shaping = field(default_factory=Shaping)

    @property
    def spec(self) -> Path:
        return self.directory / "link.json"

    @property
    def pidfile(self) -> Path:
        return self.directory / "relay.pid"

    @property
    def log(self) -> Path:
        return self.directory / "relay.log"

    @property
    def stats_path(self) -> Path:
        return self.directory / "stats.json"

    def port(self, index: int = 0) -> int:
        return self.routes[index].listen[1]

    def write(self) -> None:
        write_spec(self.spec, LinkSpec(tuple(self.routes), self.shaping))

    def start(self) -> int:
        self.write()
        return process.start(self.spec, self.pidfile, self.log, stats_path=self.stats_path)

    def stop(self) -> bool:
        return process.stop(self.pidfile, self.spec)

    def stats(self) -> dict[str, Any]:
        return process.read_stats(self.stats_path) or {}

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""

    def wait_until_loaded(self, reloads_before: int) -> dict[str, Any]:
        """The relay's stats once it reports a reload since `reloads_before` with the shaping
        and routes last written."""
        routes = sorted(route.to_json()["listen"] for route in self.routes)

        def loaded() -> dict[str, Any] | None:
            stats = self.stats()
            current = sorted(route["listen"] for route in stats.get("routes", []))
            done = stats.get("reloads", 0) > reloads_before and current == routes
            return stats if done and stats["shaping"] == self.shaping.to_json() else None

        return wait_for("the relay to load its new spec", loaded, self.log_text, timeout=20)

    def reshape(self, shaping: Shaping | None = None, routes: list[Route] | None = None) -> None:
        """Write a new spec, signal the relay (SIGHUP) and wait until it is in force."""
        before = self.stats().get("reloads", 0)
        self.shaping = shaping if shaping is not None else self.shaping
        self.routes = routes if routes is not None else self.routes
        self.write()
        assert process.reload(self.pidfile, self.spec)
        self.wait_until_loaded(before)

    def edit_in_place(self, shaping: Shaping) -> None:
        """Rewrite the spec with the same size, inode and mtime, the relay paused meanwhile
        (SIGSTOP): a change only SIGHUP can reveal."""
        pid = process.running(self.pidfile, self.spec)
        assert pid is not None
        before = os.stat(self.spec)
        text = LinkSpec(tuple(self.routes), shaping).to_json()
        os.kill(pid, signal.SIGSTOP)  # the relay's watcher cannot see the half-done edit
        try:
            data = json.dumps(text, indent=2) + "\n"
            assert len(data) == before.st_size, "the in-place edit must keep the size"
            with open(self.spec, "r+") as handle:
                handle.write(data)
            os.utime(self.spec, ns=(before.st_atime_ns, before.st_mtime_ns))
        finally:
            os.kill(pid, signal.SIGCONT)
        self.shaping = shaping
