"""ports: collisions, ranges and ports held by real listening sockets of this very process."""

from __future__ import annotations

import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from gdk_geo.errors import GdkGeoError
from gdk_geo.project import ports
from gdk_geo.project.ports import check_ports, find_holder, port_in_use
from testkit.net import free_port

needs_proc = pytest.mark.skipif(
    not Path("/proc/net/tcp").exists(), reason="finding the holder needs Linux /proc/net/tcp"
)


@pytest.fixture
def listener() -> Iterator[int]:
    """A port this test process really listens on (127.0.0.1, OS-chosen)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def own_command() -> str:
    argv = Path("/proc/self/cmdline").read_bytes().split(b"\0")
    return " ".join(arg.decode() for arg in argv if arg)


def problems(listeners: dict[str, int], **kwargs: object) -> GdkGeoError:
    with pytest.raises(GdkGeoError) as caught:
        check_ports(listeners, **kwargs)  # type: ignore[arg-type]
    return caught.value


# --- check_ports ---------------------------------------------------------------------------


def test_all_free_distinct_ports_pass() -> None:
    first, second = free_port(), free_port()
    while second == first:
        second = free_port()
    check_ports({"geo.primary.registry.port": first, "geo.secondary.registry.port": second})


def test_duplicate_names_both_keys_and_the_port() -> None:
    port = free_port()
    error = problems({"geo.primary.registry.port": port, "geo.secondary.registry.port": port})

    assert f"geo.primary.registry.port and geo.secondary.registry.port both use port {port}" in (
        error.what
    )
    assert error.where == "gdk.yml: geo.primary.registry.port, geo.secondary.registry.port"
    assert "invoke geo.config.set geo.primary.registry.port" in error.fix


def test_three_way_duplicate() -> None:
    port = free_port()
    error = problems({"a.port": port, "b.port": port, "c.port": port})
    assert f"a.port, b.port and c.port all use port {port}" in error.what


@pytest.mark.parametrize("bad", [0, 70000, -1, True])
def test_out_of_range_names_the_key(bad: int) -> None:
    error = problems({"geo.primary.registry.port": free_port(), "geo.secondary.geo.port": bad})

    assert f"geo.secondary.geo.port: {bad!r} is not a port (use 1–65535)" in error.what
    assert error.where == "gdk.yml: geo.secondary.geo.port"


@needs_proc
def test_port_held_by_this_process_names_key_port_pid_and_command(listener: int) -> None:
    error = problems({"geo.primary.registry.port": listener})

    assert "geo.primary.registry.port" in error.what
    assert f"port {listener} on 127.0.0.1 is already in use" in error.what
    assert f"held by pid {os.getpid()} (" in error.what
    assert own_command()[:40] in error.what
    # The fix suggests a concrete port that is free right now.
    suggested = re.search(r"invoke geo\.config\.set geo\.primary\.registry\.port (\d+)", error.fix)
    assert suggested, error.fix
    assert not port_in_use(int(suggested.group(1)))


def test_unknown_holder_is_another_process(listener: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "find_holder", lambda port: None)
    error = problems({"geo.primary.registry.port": listener})
    assert f"port {listener} on 127.0.0.1 is already in use, held by another process" in error.what


def test_ports_we_hold_ourselves_are_exempt(listener: int) -> None:
    check_ports({"geo.primary.registry.port": listener}, ours={listener})
    check_ports({"geo.primary.registry.port": listener}, ours=lambda port: port == listener)


def test_ours_does_not_excuse_a_duplicate(listener: int) -> None:
    error = problems({"a.port": listener, "b.port": listener}, ours={listener})
    assert f"a.port and b.port both use port {listener}" in error.what
    assert "already in use" not in error.what


def test_one_error_lists_every_problem(listener: int) -> None:
    dup = free_port()
    error = problems(
        {
            "geo.primary.registry.port": listener,
            "geo.primary.geo.port": dup,
            "geo.secondary.geo.port": dup,
            "geo.secondary.registry.port": 70000,
        }
    )

    assert error.what.startswith("3 port problems:")
    assert "geo.secondary.registry.port: 70000" in error.what
    assert "geo.primary.geo.port and geo.secondary.geo.port both use" in error.what
    assert f"geo.primary.registry.port: port {listener}" in error.what
    assert error.where == (
        "gdk.yml: geo.secondary.registry.port, geo.primary.geo.port, "
        "geo.secondary.geo.port, geo.primary.registry.port"
    )


# --- port_in_use and find_holder -----------------------------------------------------------


def test_port_in_use_follows_a_real_listener() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)


def _wait_for_state(port: int, status: str, timeout: float = 5) -> None:
    """Until a loopback TCP socket on `port` is in `status` (psutil's name for the state)."""
    deadline = time.monotonic() + timeout
    while not any(
        status == c.status and port in (c.laddr.port, c.raddr.port if c.raddr else None)
        for c in psutil.net_connections(kind="tcp4")
    ):
        assert time.monotonic() < deadline, f"no socket on port {port} reached {status}"
        time.sleep(0.005)


def test_time_wait_does_not_count_as_in_use() -> None:
    with socket.socket() as server:
        # Like the registry (Go) and uvicorn: servers set SO_REUSEADDR, and Linux lets a new
        # bind past a TIME_WAIT socket only when both the old and the new socket set it.
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first, so its end lands in TIME_WAIT
    _wait_for_state(port, "CLOSE_WAIT")  # the client has the server's FIN
    client.close()
    _wait_for_state(port, "TIME_WAIT")  # and the server side has the client's

    with socket.socket() as plain:  # no SO_REUSEADDR: TIME_WAIT blocks this bind
        try:
            plain.bind(("127.0.0.1", port))
        except OSError:
            pass
        else:
            pytest.skip("the kernel left no TIME_WAIT socket behind to test against")
    assert not port_in_use(port)


@needs_proc
def test_find_holder_names_this_process(listener: int) -> None:
    holder = find_holder(listener)
    assert holder is not None
    assert holder.startswith(f"pid {os.getpid()} (")


@needs_proc
def test_find_holder_sees_ipv6_listeners() -> None:
    try:
        sock = socket.socket(socket.AF_INET6)
        sock.bind(("::1", 0))
    except OSError:
        pytest.skip("IPv6 loopback (::1) is not available on this machine")
    with sock:
        sock.listen()
        port = sock.getsockname()[1]
        assert port_in_use(port, "::1")
        assert (find_holder(port) or "").startswith(f"pid {os.getpid()} (")


def test_find_holder_of_a_free_port_is_none() -> None:
    assert find_holder(free_port()) is None
