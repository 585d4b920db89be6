"""The link relay: `python -m gdk_geo.link.relay --spec FILE [--stats FILE]`.

A userspace TCP relay that plays a WAN between Geo nodes where the kernel has no `netem`.
It listens on every route of the spec (`gdk_geo.link.spec`), connects each accepted
connection to its route's target, and carries the bytes both ways under the spec's
shaping (`gdk_geo.link.pipe` does the carrying): latency and jitter as a delay on every
chunk, in order; the rate as one token bucket a direction for the whole link.

**Loss.** A relay carries TCP streams, not packets: a segment lost between two kernels is
retransmitted by them, and a byte stream has nothing to drop without corrupting it. So loss
is played as what it does to a TCP connection: with probability p (`loss_percent`), a
chunk (a read of up to 64 KiB, not a packet) is held back an extra retransmission timeout,
max(200 ms, 2 × latency), as TCP's RTO would stall the stream: everything behind it waits,
and that direction reads nothing more meanwhile; and a new connection is refused (reset at
once) with probability p, as a lost SYN fails a short-timeout client. Throughput under loss
is therefore that of the stalls, not of TCP's congestion control (no slow start after).

**Down.** A partition: new connections are accepted and reset at once (SO_LINGER 0), and
open ones stall, no byte moving either way, until the link is up again; then they resume.

**Reload.** On SIGHUP, and whenever the spec file changes (checked every 0.2 s), the relay
reads it again: the new shaping applies to open connections from their next chunk; a new
route gets a listener; a route gone loses its listener and its connections (reset); a
route's new target serves its next connections. A spec that does not read leaves the link
as it was and is logged.

**Stats.** With `--stats FILE`, every second (and after each reload) the relay writes
(atomically) its pid, shaping and, per route, the bytes each way, connections accepted and
open, those refused (down, or lost) and those whose target did not answer (unreachable).
SIGTERM or SIGINT closes the listeners, resets open connections and
exits 0. The relay writes no pidfile: the process that starts it does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.link import pipe
from gdk_geo.link.spec import Address, LinkSpec, Route, read_spec

WATCH_SECONDS = 0.2
STATS_SECONDS = 1.0
CONNECT_TIMEOUT = 10.0
log = logging.getLogger("gdk_geo.link.relay")


@dataclass
class Listener:
    """One route's server, its current target, its open connections and its counters."""

    route: Route
    server: asyncio.Server | None = None
    connections: set[asyncio.Task[None]] = field(default_factory=set)
    accepted: int = 0
    refused: int = 0
    bytes_to_target: int = 0
    bytes_to_client: int = 0
    unreachable: int = 0

    def count_to_target(self, size: int) -> None:
        self.bytes_to_target += size

    def count_to_client(self, size: int) -> None:
        self.bytes_to_client += size

    def stats(self) -> dict[str, object]:
        return {
            **self.route.to_json(),
            "connections": self.accepted,
            "open": len(self.connections),
            "refused": self.refused,
            "unreachable": self.unreachable,
            "bytes_to_target": self.bytes_to_target,
            "bytes_to_client": self.bytes_to_client,
        }


def _signature(path: Path) -> tuple[int, int, int] | None:
    """What tells a rewritten spec from the one read: an atomic write is a new inode."""
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_mtime_ns, status.st_ino, status.st_size


class Relay:
    """The relay process's state: its listeners, the link's conditions and pacers."""

    def __init__(self, spec_path: Path, stats_path: Path | None) -> None:
        self.spec_path, self.stats_path = spec_path, stats_path
        self.listeners: dict[Address, Listener] = {}
        self.conditions: pipe.Conditions | None = None
        self.pacers = (pipe.Pacer(), pipe.Pacer())  # towards the targets, towards the clients
        self.reloads = 0
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()

    async def run(self) -> int:
        """Serve until SIGTERM or SIGINT; 1 when the spec or a listener fails at start."""
        loop = asyncio.get_running_loop()
        # Before the listeners: whoever started the relay may signal it once they accept,
        # and SIGHUP's default action would end it.
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        signature = _signature(self.spec_path)
        spec = read_spec(self.spec_path)
        self.conditions = pipe.Conditions(spec.shaping)
        for route in spec.routes:
            await self._listen(route)  # an error here is the start's error
        log.info("relaying %d routes; shaping: %s", len(spec.routes), spec.shaping.describe())
        self._write_stats()
        async with asyncio.TaskGroup() as group:
            watcher = group.create_task(self._watch(signature))
            reporter = group.create_task(self._report())
            await self._stop.wait()
            watcher.cancel()
            reporter.cancel()
        await self._close()
        log.info("stopped")
        return 0

    async def _listen(self, route: Route) -> None:
        listener = Listener(route)

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._connection(listener, reader, writer)

        host, port = route.listen
        try:
            listener.server = await asyncio.start_server(accepted, host, port)
        except OSError as exc:
            raise GdkGeoError(
                f"the link relay cannot listen on {host}:{port}: {exc.strerror or exc}",
                fix="free the port, or give the route another listen port",
            ) from exc
        self.listeners[route.listen] = listener

    async def _connection(
        self, listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        conditions = self.conditions
        assert conditions is not None
        if not conditions.up.is_set() or conditions.lost():
            listener.refused += 1
            pipe.reset(writer)
            return
        task = asyncio.current_task()
        assert task is not None
        listener.connections.add(task)
        listener.accepted += 1
        try:
            try:
                target = await asyncio.wait_for(
                    asyncio.open_connection(*listener.route.target), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError):
                listener.unreachable += 1  # the node behind the link, not the link
                pipe.reset(writer)
                return
            except asyncio.CancelledError:
                pipe.reset(writer)
                raise
            counts = (listener.count_to_target, listener.count_to_client)
            await pipe.relay((reader, writer), target, conditions, self.pacers, counts)
        finally:
            listener.connections.discard(task)

    async def _watch(self, signature: tuple[int, int, int] | None) -> None:
        """Reload on SIGHUP at once, and on a changed spec file within `WATCH_SECONDS`."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reload.wait(), WATCH_SECONDS)
            current = _signature(self.spec_path)
            if self._reload.is_set() or current != signature:
                self._reload.clear()
                signature = current
                await self._apply_spec()

    async def _apply_spec(self) -> None:
        try:
            spec = read_spec(self.spec_path)
        except GdkGeoError as exc:
            log.error("kept the link as it was: %s", exc.one_line())
            return
        assert self.conditions is not None
        self.conditions.apply(spec.shaping)
        await self._apply_routes(spec)
        self.reloads += 1
        log.info("reloaded %d routes; shaping: %s", len(spec.routes), spec.shaping.describe())
        self._write_stats()

    async def _apply_routes(self, spec: LinkSpec) -> None:
        wanted = {route.listen: route for route in spec.routes}
        for listen in [listen for listen in self.listeners if listen not in wanted]:
            await self._drop(self.listeners.pop(listen))
        for listen, route in wanted.items():
            if listen in self.listeners:
                self.listeners[listen].route = route  # a new target serves new connections
                continue
            try:
                await self._listen(route)
            except GdkGeoError as exc:
                log.error("%s", exc.one_line())

    @staticmethod
    async def _drop(listener: Listener) -> None:
        if listener.server is not None:
            listener.server.close()
        for task in list(listener.connections):
            task.cancel()
        await asyncio.gather(*listener.connections, return_exceptions=True)

    async def _close(self) -> None:
        for listener in self.listeners.values():
            await self._drop(listener)
        self._write_stats()

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(STATS_SECONDS)
            self._write_stats()

    def _write_stats(self) -> None:
        if self.stats_path is None or self.conditions is None:
            return
        stats = {
            "pid": os.getpid(),
            "written": time.time(),
            "reloads": self.reloads,
            "shaping": self.conditions.shaping.to_json(),
            "routes": [listener.stats() for listener in self.listeners.values()],
        }
        try:
            atomic_write(self.stats_path, json.dumps(stats) + "\n")
        except OSError as exc:
            log.error("cannot write the stats to %s: %s", self.stats_path, exc)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gdk_geo.link.relay", description="Relay TCP routes over a shaped link."
    )
    parser.add_argument("--spec", type=Path, required=True, help="the link spec (JSON)")
    parser.add_argument("--stats", type=Path, help="where to write the counters every second")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s link relay: %(message)s",
        stream=sys.stderr,
    )
    try:
        return asyncio.run(Relay(args.spec, args.stats).run())
    except GdkGeoError as exc:
        log.error("%s", exc.one_line())
        return 1


if __name__ == "__main__":
    sys.exit(main())
