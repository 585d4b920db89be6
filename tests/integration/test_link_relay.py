"""The link relay as a process: latency, order under jitter, rate, partitions, reload, stop.

Each test runs a relay of its own (`gdk_geo.link.process.start`, so `python -m
gdk_geo.link.relay`) in front of a small loopback service (tests/support/link_rig.py), with
real sockets. Timing assertions hold on a busy machine: what the link adds is asserted as a
lower bound (a relay can only be slower than asked, never faster), upper bounds are
generous, and speed figures belong to measurements, not to tests. Where a test shows that
nothing arrives (a stall), it reads with a timeout: the absence of an event has no event to
wait on, so a quiet half second is the proof.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from link_rig import (
    HOST,
    LinkRig,
    echo_connection,
    loopback_service,
    receive_exactly,
    refused,
)

from gdk_geo.errors import GdkGeoError
from gdk_geo.link import probe, process
from gdk_geo.link.shaping import Shaping
from gdk_geo.link.spec import Route
from testkit.net import free_port, free_ports, wait_for

GENEROUS_MS = 100  # over the asked latency, for a loaded machine (idle: about 2 ms)


@pytest.fixture(scope="module")
def service() -> Iterator[int]:
    with loopback_service() as port:
        yield port


@pytest.fixture
def link(tmp_path: Path, service: int) -> Iterator[LinkRig]:
    """A relay in front of `service`, with no shaping yet; stopped after the test."""
    rig = LinkRig(tmp_path, [Route((HOST, free_port()), (HOST, service))])
    rig.start()
    yield rig
    rig.stop()


def echo_ms(sock: socket.socket, payload: bytes = b"ping") -> float:
    started = time.perf_counter()
    sock.sendall(payload)
    assert receive_exactly(sock, len(payload)) == payload
    return (time.perf_counter() - started) * 1000


def refusals(link: LinkRig) -> int:
    """Connections the relay refused, as its stats (written every second) last said."""
    return link.stats()["routes"][0]["refused"]


# --- latency and order ----------------------------------------------------------------------


def test_the_round_trip_grows_by_the_latency(link: LinkRig, service: int) -> None:
    link.reshape(Shaping(latency_ms=200))

    direct = probe.round_trip_ms(HOST, service)
    through = probe.round_trip_ms(HOST, link.port())

    assert direct is not None and through is not None
    assert 200 <= through < 200 + GENEROUS_MS, (direct, through)


def test_jitter_never_reorders_a_stream(link: LinkRig) -> None:
    link.reshape(Shaping(latency_ms=20, jitter_ms=20))  # each chunk 0-20 ms one way
    lines = [b"%06d\n" % number for number in range(400)]
    expected = b"".join(lines)

    with echo_connection(link.port()) as sock:

        def send() -> None:
            for line in lines:
                sock.sendall(line)
                time.sleep(0.001)  # one chunk each, so that many are in flight at once

        sender = threading.Thread(target=send)
        sender.start()
        received = receive_exactly(sock, len(expected))
        sender.join()

    assert received == expected


def test_loss_refuses_new_connections_and_stalls_open_ones(link: LinkRig) -> None:
    with echo_connection(link.port()) as sock:
        link.reshape(Shaping(loss_percent=100))

        assert refused(link.port())
        # Each way the chunk is held back a retransmission timeout (200 ms at least).
        assert echo_ms(sock) >= 400

    wait_for("the relay's stats to count the refusal", lambda: refusals(link) >= 1, link.log_text)


# --- rate -----------------------------------------------------------------------------------

SIZE = 4_000_000  # 32 Mbit: 1.6 s at 20 Mbit/s


def download(port: int) -> tuple[int, float]:
    with socket.create_connection((HOST, port), timeout=30) as sock:
        started = time.perf_counter()
        sock.sendall(b"SEND %d\n" % SIZE)
        received = len(receive_exactly(sock, SIZE))
        return received, time.perf_counter() - started


def upload(port: int) -> tuple[int, float]:
    with socket.create_connection((HOST, port), timeout=30) as sock:
        started = time.perf_counter()
        sock.sendall(b"SINK %d\n" % SIZE)
        sock.sendall(b"x" * SIZE)
        received = int(sock.makefile("rb").readline())
        return received, time.perf_counter() - started


@pytest.mark.parametrize("transfer", [download, upload])
def test_the_rate_holds_a_transfer_to_it(link: LinkRig, transfer) -> None:
    link.reshape(Shaping(rate_bits=20_000_000))

    received, seconds = transfer(link.port())

    assert received == SIZE
    assert 1.4 <= seconds < 30, seconds  # 1.6 s at the rate, less the burst
    field = "bytes_to_client" if transfer is download else "bytes_to_target"
    wait_for(
        "the relay's stats to count the transfer",
        lambda: link.stats()["routes"][0][field] >= SIZE,
        link.log_text,
    )


# --- partitions -----------------------------------------------------------------------------


def test_down_resets_new_connections_and_stalls_open_ones_until_up(link: LinkRig) -> None:
    with echo_connection(link.port()) as sock:
        link.reshape(Shaping(down=True))

        assert refused(link.port())
        sock.sendall(b"sent while down")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):  # nothing moves: no echo comes back while down
            sock.recv(100)

        link.reshape(Shaping(down=False))
        sock.settimeout(10)
        assert receive_exactly(sock, len(b"sent while down")) == b"sent while down"

    wait_for("the relay's stats to count the refusal", lambda: refusals(link) >= 1, link.log_text)


# --- reload ---------------------------------------------------------------------------------


def test_sighup_changes_the_latency_of_an_open_connection(link: LinkRig) -> None:
    link.reshape(Shaping(latency_ms=100))
    with echo_connection(link.port()) as sock:
        before = echo_ms(sock)
        reloads = link.stats()["reloads"]
        link.edit_in_place(Shaping(latency_ms=300))
        time.sleep(0.6)  # three of the watcher's checks: an unchanged-looking file is not read
        assert link.stats()["reloads"] == reloads, "the watcher saw the in-place edit"

        assert process.reload(link.pidfile, link.spec)
        link.wait_until_loaded(reloads)
        after = echo_ms(sock)

    assert 100 <= before < 100 + GENEROUS_MS
    assert 300 <= after < 300 + GENEROUS_MS


def test_a_rewritten_spec_adds_and_removes_listeners(link: LinkRig, service: int) -> None:
    first = link.routes[0]
    second = Route((HOST, free_port()), (HOST, service))
    with echo_connection(first.listen[1]) as sock:
        before = link.stats()["reloads"]
        link.routes = [first, second]
        link.write()  # no signal: the relay sees the new file by itself
        link.wait_until_loaded(before)
        assert probe.round_trip_ms(HOST, second.listen[1]) is not None

        link.reshape(routes=[second])
        sock.settimeout(10)
        with pytest.raises(ConnectionResetError):  # the route's connections went with it
            sock.recv(1)

    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(first.listen, timeout=5).close()


def test_a_spec_that_does_not_read_leaves_the_link_as_it_was(link: LinkRig) -> None:
    link.reshape(Shaping(latency_ms=50))
    link.spec.write_text('{"routes": [], "shaping": {"latency_ms": -1}}')

    wait_for("the relay to log the refused spec", lambda: "kept the link" in link.log_text())
    assert link.stats()["shaping"]["latency_ms"] == 50
    assert probe.round_trip_ms(HOST, link.port()) is not None


# --- the process ----------------------------------------------------------------------------


def test_stop_leaves_no_process_and_no_listener(link: LinkRig) -> None:
    pid = process.running(link.pidfile, link.spec)
    assert pid is not None
    assert process.start(link.spec, link.pidfile, link.log) == pid  # adopted, not doubled

    with echo_connection(link.port()) as sock:
        assert link.stop()
        sock.settimeout(10)
        with pytest.raises(ConnectionResetError):  # reset, not ended as if complete
            sock.recv(1)

    assert not psutil.pid_exists(pid)
    assert not link.pidfile.exists()
    assert process.running(link.pidfile, link.spec) is None
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, link.port()), timeout=5).close()
    assert not link.stop()


def test_stop_never_signals_another_program(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidfile = tmp_path / "relay.pid"
        pidfile.write_text(f"{other.pid}\n")

        assert not process.stop(pidfile, tmp_path / "link.json")

        assert other.poll() is None
        assert not pidfile.exists()
    finally:
        other.kill()
        other.wait()


def test_a_taken_port_fails_the_start_with_the_log(tmp_path: Path, service: int) -> None:
    listen_port, other_port = free_ports(2)
    rig = LinkRig(
        tmp_path,
        [
            Route((HOST, other_port), (HOST, service)),
            Route((HOST, listen_port), (HOST, service)),
        ],
    )
    with socket.create_server((HOST, listen_port)), pytest.raises(GdkGeoError) as raised:
        rig.start()

    assert f"cannot listen on {HOST}:{listen_port}" in raised.value.what
    assert process.running(rig.pidfile, rig.spec) is None
    assert not rig.pidfile.exists()


def test_the_probe_says_none_where_nothing_answers() -> None:
    assert probe.round_trip_ms(HOST, free_port(), timeout=2) is None
