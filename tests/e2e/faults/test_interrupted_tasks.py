"""`geo.setup` and `geo.restart` interrupted with Ctrl-C, then run again: they converge.

Ctrl-C can land anywhere: while certificates are written, while a container is being
created or restarted, while a service is being stopped or started, during the health waits.
Each case here interrupts the real task (SIGINT to the `invoke` process, as a terminal
does) at a few different moments, runs the same task again, and checks what a user would
trust: exit 0, both nodes healthy, one container per node, exactly one service process per
node whose pid is the one in its pidfile, and replication still working end to end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from faults_kit import Scratch, scratch_project, service_processes
from helpers import interruptible_invoke

from gdk_geo.runtime import containers, services

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def scratch(docker_client, tmp_path: Path) -> Iterator[Scratch]:
    """A fresh scratch project with nothing set up yet; destroyed with its data after."""
    with scratch_project(tmp_path / "project", f"gdkgeo-fint-{uuid.uuid4().hex[:6]}") as made:
        yield made


def interrupted(scratch: Scratch, moment: Callable[[], bool], *args: str) -> int:
    """Run `invoke <args>` and send it SIGINT as soon as `moment()` is true; returns its exit
    code: 130 when the task was interrupted (and said so), 0 when it finished first."""
    env = {**os.environ, "GDK_GEO_ROOT": str(scratch.root), "COLUMNS": "200"}
    process = subprocess.Popen(
        interruptible_invoke(*args),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while process.poll() is None and not moment() and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert "Traceback" not in stderr, stderr
    assert process.returncode in (0, 130), (process.returncode, stderr)
    return process.returncode


# Moments to interrupt at, each true from one step of the task on.


def certificates_written(scratch: Scratch) -> Callable[[], bool]:
    return lambda: (scratch.project.data_dir(scratch.cfg) / "trust" / "ca.crt").exists()


def container_exists(scratch: Scratch, node: str) -> Callable[[], bool]:
    name = containers.container_name(scratch.cfg, node)
    client = containers.engine()
    return lambda: containers.find(client, name) is not None


def service_pid_changed(scratch: Scratch, node: str) -> Callable[[], bool]:
    """True once the node's pidfile is gone or names another process than now."""
    pidfile = scratch.node(node).pidfile
    before = pidfile.read_text() if pidfile.exists() else None

    def changed() -> bool:
        try:
            return pidfile.read_text() != before
        except FileNotFoundError:
            return before is not None

    return changed


def container_restarted(scratch: Scratch, node: str) -> Callable[[], bool]:
    container = scratch.container(node)
    started = container.attrs["State"]["StartedAt"]

    def restarted() -> bool:
        container.reload()
        return container.attrs["State"]["StartedAt"] != started

    return restarted


def assert_converged(scratch: Scratch) -> None:
    """Both nodes healthy, one container each, one service process each (the pidfile's)."""
    report = json.loads(scratch.must("geo.status", "--json").stdout)
    for name in ("primary", "secondary"):
        node = report["nodes"][name]
        assert node["registry"]["healthy"] and node["service"]["healthy"], node
        paths = scratch.node(name)
        state = services.state(paths)
        assert state.running and not state.stale, state
        assert service_processes(paths) == [state.pid], "exactly the pidfile's service runs"
    ours = containers.engine().containers.list(
        all=True, filters={"label": f"{containers.LABEL_PROJECT}={scratch.root}"}
    )
    assert sorted(c.name for c in ours) == sorted(
        containers.container_name(scratch.cfg, name) for name in ("primary", "secondary")
    )
    assert all(c.status == "running" for c in ours)


def replication_works(scratch: Scratch, repo: str) -> None:
    digest = scratch.push(repo, "v1")
    scratch.wait_replicated({(repo, "v1"): digest})
    scratch.verify_clean()


SETUP_MOMENTS = {
    "rendering done": certificates_written,
    "primary container created": lambda scratch: container_exists(scratch, "primary"),
    "secondary service started": lambda scratch: service_pid_changed(scratch, "secondary"),
}


@pytest.mark.parametrize("moment", SETUP_MOMENTS)
def test_interrupted_setup_converges_when_run_again(scratch: Scratch, moment: str) -> None:
    interrupted(scratch, SETUP_MOMENTS[moment](scratch), "geo.setup")

    scratch.must("geo.setup")

    assert_converged(scratch)
    replication_works(scratch, "interrupted/setup")


RESTART_MOMENTS = {
    "primary service stopped": lambda scratch: service_pid_changed(scratch, "primary"),
    "primary container restarted": lambda scratch: container_restarted(scratch, "primary"),
    "secondary container restarted": lambda scratch: container_restarted(scratch, "secondary"),
}


def test_interrupted_restart_converges_when_run_again(scratch: Scratch) -> None:
    scratch.must("geo.setup")
    for moment in RESTART_MOMENTS.values():
        interrupted(scratch, moment(scratch), "geo.restart")

        scratch.must("geo.restart")

        assert_converged(scratch)
    replication_works(scratch, "interrupted/restart")
