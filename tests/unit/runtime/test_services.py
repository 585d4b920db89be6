"""The services' pidfiles after an interruption: a service is never started twice.

Ctrl-C on `invoke geo.setup` or `geo.restart` can land between spawning a service and writing
its pidfile; the service then runs with no pidfile naming it. The next run must adopt it
rather than start a second one (which could not bind the port, while the first one blocked
the port check). A stand-in process whose command line looks like the service is enough:
that is all `services` looks at, and it needs no Docker and no free port.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gdk_geo import procutil
from gdk_geo.project import NodePaths
from gdk_geo.runtime import services


def _look_alike(paths: NodePaths, module: str | None = None) -> subprocess.Popen[bytes]:
    """A process whose command line is the node's service's (`-m module`), doing nothing.

    Returned once /proc shows that command line: Popen can return (vfork) before the
    kernel has set up the new program's arguments, and until then the process is not
    recognisable as the service.
    """
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time; time.sleep(120)",
            "-m",
            module or services.MODULES[paths.name],
            "--config",
            str(paths.gitlab_yml),
        ]
    )
    deadline = time.monotonic() + 10
    while str(paths.gitlab_yml) not in services._cmdline(process.pid):
        assert time.monotonic() < deadline, "the look-alike never showed its command line"
        time.sleep(0.01)
    return process


@pytest.fixture
def orphan(tmp_path: Path) -> Iterator[tuple[NodePaths, subprocess.Popen[bytes]]]:
    """A process that looks like the primary's service for `tmp_path`, with no pidfile."""
    paths = NodePaths("primary", tmp_path / "primary")
    paths.gitlab_yml.parent.mkdir(parents=True)
    process = _look_alike(paths)
    yield paths, process
    process.kill()
    process.wait()


def test_a_service_without_a_pidfile_is_found(orphan) -> None:
    paths, process = orphan

    state = services.state(paths)

    assert (state.running, state.pid, state.stale) == (True, process.pid, False)


def test_start_adopts_it_instead_of_starting_another(orphan) -> None:
    paths, process = orphan

    pid, started = services.start(paths)

    assert (pid, started) == (process.pid, False)
    assert paths.pidfile.read_text().strip() == str(process.pid)


def test_a_stale_pidfile_beside_it_is_replaced(orphan) -> None:
    paths, process = orphan
    paths.pidfile.write_text("999999999\n")

    state = services.state(paths)
    assert (state.running, state.pid, state.stale) == (True, process.pid, True)
    assert services.start(paths) == (process.pid, False)
    assert paths.pidfile.read_text().strip() == str(process.pid)


def test_stop_stops_it(orphan) -> None:
    paths, process = orphan

    assert services.stop(paths) is True

    assert process.wait(timeout=10) is not None
    assert not paths.pidfile.exists()
    assert services.state(paths).running is False


def test_stop_stops_every_instance_recorded_or_not(orphan) -> None:
    paths, unrecorded = orphan
    recorded = _look_alike(paths)
    paths.pidfile.write_text(f"{recorded.pid}\n")
    try:
        assert services.stop(paths) is True
        assert recorded.wait(timeout=10) is not None
        assert unrecorded.wait(timeout=10) is not None
    finally:
        recorded.kill()
        recorded.wait()


@pytest.mark.parametrize("node", ["primary", "secondary"])
def test_a_service_started_by_the_previous_release_is_found_and_stopped(
    tmp_path: Path, node: str
) -> None:
    """Before the services moved into packages they ran as `-m gdk_geo.primary_service` and
    `-m gdk_geo.worker`; an environment started then is still ours after the upgrade."""
    paths = NodePaths(node, tmp_path / node)
    paths.gitlab_yml.parent.mkdir(parents=True)
    (legacy,) = services.LEGACY_MODULES[node]
    process = _look_alike(paths, legacy)
    try:
        assert services.state(paths).pid == process.pid
        assert services.stop(paths) is True
        assert process.wait(timeout=10) is not None
    finally:
        process.kill()
        process.wait()


def test_a_stopped_service_whose_parent_has_not_reaped_it_counts_as_gone() -> None:
    """A service outlives the `invoke` that started it; its zombie waits for whoever reaps
    it. Stopping waited for that reaping (up to 2 s a service where init is slow to reap)."""
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, sys, time\n"
            "child = os.fork()\n"
            "if child == 0:\n"
            "    time.sleep(1)  # ends while it is being waited for\n"
            "    os._exit(0)\n"
            "print(child, flush=True)\n"
            "time.sleep(60)  # never reaps the child: it stays a zombie meanwhile\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        zombie = int(parent.stdout.readline())
        assert procutil.wait_gone(zombie, timeout=10)
        assert parent.poll() is None, "the zombie's parent still runs: nobody reaped it"
    finally:
        parent.kill()
        parent.wait()
