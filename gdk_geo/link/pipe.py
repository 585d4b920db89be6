"""One relayed connection: two pipes, each carrying one direction under the link's shaping.

A pipe reads chunks from one socket and delivers them to the other. Between the two it
plays the link, in the order a real WAN does:

- bandwidth first (`Pacer`): a chunk waits for the link's tokens as a packet waits in the
  bottleneck's queue; one pacer per direction is shared by every connection, so two
  transfers split the link rather than each getting all of it;
- then propagation: the chunk is stamped due `latency/2 ± jitter/2` later (uniform), and
  never before the chunk ahead of it (a TCP stream arrives in order, late or not);
- a "lost" chunk is due a retransmission timeout later still, and its pipe reads nothing
  more for that timeout, as a TCP sender waits out its RTO: the stream stalls and its
  throughput drops, while the other connections keep the link's bandwidth;
- reading goes on while chunks are in flight (a pipe, not stop-and-wait), up to
  `IN_FLIGHT_LIMIT` bytes a direction: then the pipe stops reading, the sender's socket
  buffer fills, and back-pressure reaches it as it would from a full window.

While the link is down nothing moves: a pipe neither reads nor delivers, and what it holds
waits for the link to come back. An end that resets makes the whole connection reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import deque
from collections.abc import Callable

from gdk_geo.link.shaping import Shaping

CHUNK = 64 * 1024  # the largest read; smaller under a low rate, so pacing stays smooth
IN_FLIGHT_LIMIT = 4 * 1024 * 1024  # bytes a direction may hold: 4 MiB ÷ one-way delay
MIN_BURST = 32 * 1024  # what the link passes at once, at the least...
BURST_SECONDS = 0.010  # ...or 10 ms of the rate, whichever is larger
MIN_RTO_SECONDS = 0.2  # TCP's lowest retransmission timeout on Linux


class Conditions:
    """The link as it is now, shared by every connection: the shaping, applied live.

    `up` is set while the link is up: pipes wait on it, so a partition stalls them and
    its end wakes them, with no polling.
    """

    def __init__(self, shaping: Shaping) -> None:
        self.shaping = shaping
        self.up = asyncio.Event()
        self.apply(shaping)

    def apply(self, shaping: Shaping) -> None:
        self.shaping = shaping
        if shaping.down:
            self.up.clear()
        else:
            self.up.set()

    def delay(self) -> float:
        """One way's delay for the next chunk, in seconds: half the round trip, ± half the
        jitter (uniform), never below zero."""
        half, spread = self.shaping.latency_ms / 2000, self.shaping.jitter_ms / 2000
        return max(0.0, half + random.uniform(-spread, spread)) if spread else half

    def lost(self) -> bool:
        """Whether this chunk (or new connection) is the one in `loss_percent` lost."""
        return bool(self.shaping.loss_percent) and random.random() * 100 < self.shaping.loss_percent

    def retransmission_timeout(self) -> float:
        """How long a lost segment stalls a TCP stream: max(200 ms, 2 × the round trip)."""
        return max(MIN_RTO_SECONDS, 2 * self.shaping.latency_ms / 1000)


class Pacer:
    """The link's bandwidth in one direction: a token bucket, kept as the time its tokens
    run out (GCRA), so a late timer never costs throughput: each chunk is due on the
    schedule, not after the previous wake-up.
    """

    def __init__(self) -> None:
        self._free_at = 0.0  # when every reservation so far has been paid for
        self._rate_bits = 0

    @staticmethod
    def burst(rate_bits: int) -> int:
        """Bytes the link passes without waiting."""
        return max(MIN_BURST, int(rate_bits / 8 * BURST_SECONDS))

    async def take(self, size: int, rate_bits: int) -> None:
        """Wait until `size` bytes may cross at `rate_bits` (0: at once)."""
        if rate_bits <= 0:
            return
        now = asyncio.get_running_loop().time()
        if rate_bits != self._rate_bits:  # a new rate owes nothing to the old one
            self._rate_bits, self._free_at = rate_bits, now
        bytes_per_second = rate_bits / 8
        self._free_at = max(self._free_at, now) + size / bytes_per_second
        wait = self._free_at - self.burst(rate_bits) / bytes_per_second - now
        if wait > 0:
            await asyncio.sleep(wait)


class Pipe:
    """One direction of a connection: reads `source`, delivers to `sink` as the link would.

    Two tasks share a queue of (due time, chunk): the reader paces and stamps, the
    deliverer waits for each due time and writes. An empty chunk is the end of the stream
    (delivered as a half-close, in its turn).
    """

    def __init__(
        self,
        source: asyncio.StreamReader,
        sink: asyncio.StreamWriter,
        conditions: Conditions,
        pacer: Pacer,
        count: Callable[[int], None],
    ) -> None:
        self.source, self.sink, self.conditions, self.pacer = source, sink, conditions, pacer
        self.count = count  # told the size of every chunk delivered
        self._queue: deque[tuple[float, bytes]] = deque()
        self._in_flight = 0
        self._last_due = 0.0
        self._queued = asyncio.Event()
        self._drained = asyncio.Event()

    async def run(self) -> None:
        """Carry the stream to its end; an OSError from either socket ends it early."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read())
            group.create_task(self._deliver())

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.conditions.up.wait()
            rate = self.conditions.shaping.rate_bits
            chunk = await self.source.read(min(CHUNK, Pacer.burst(rate)) if rate else CHUNK)
            if chunk:
                await self.pacer.take(len(chunk), self.conditions.shaping.rate_bits)
            lost = bool(chunk) and self.conditions.lost()
            stall = self.conditions.retransmission_timeout() if lost else 0.0
            self._last_due = max(self._last_due, loop.time() + self.conditions.delay() + stall)
            self._queue.append((self._last_due, chunk))
            self._in_flight += len(chunk)
            self._queued.set()
            if not chunk:
                return
            if stall:  # the sender waits out the timeout too: the stream's throughput drops
                await asyncio.sleep(stall)
            while self._in_flight >= IN_FLIGHT_LIMIT:
                self._drained.clear()
                await self._drained.wait()

    async def _deliver(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                self._queued.clear()
                await self._queued.wait()
            due, chunk = self._queue[0]
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            await self.conditions.up.wait()
            self._queue.popleft()
            if not chunk:
                if self.sink.can_write_eof():
                    self.sink.write_eof()
                return
            self.sink.write(chunk)
            await self.sink.drain()
            self._in_flight -= len(chunk)
            self.count(len(chunk))
            self._drained.set()


def reset(writer: asyncio.StreamWriter) -> None:
    """Close `writer`'s connection with a reset (SO_LINGER 0), not a clean end: a peer must
    not take a cut transfer, or a refused connection, for a complete one."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: nothing left to reset
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def relay(
    client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    target: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    conditions: Conditions,
    pacers: tuple[Pacer, Pacer],
    counts: tuple[Callable[[int], None], Callable[[int], None]],
) -> None:
    """Carry a connection both ways until both ends have closed. `pacers` and `counts` are
    (towards the target, towards the client). An error on either side, or cancellation
    (the relay stops, the route goes), resets both ends."""
    (client_r, client_w), (target_r, target_w) = client, target
    clean = False
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(Pipe(client_r, target_w, conditions, pacers[0], counts[0]).run())
            group.create_task(Pipe(target_r, client_w, conditions, pacers[1], counts[1]).run())
        clean = True
    except* (OSError, asyncio.IncompleteReadError):
        pass  # a reset or a broken pipe on one side: reset the other (finally)
    finally:
        for writer in (client_w, target_w):
            if clean:
                writer.close()
            else:
                reset(writer)
