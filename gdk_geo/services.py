"""The bundled Geo services as background processes: start, stop, and tell whether they run.

Each node runs one Python process (`gdk_geo.primary.service` on the primary,
`gdk_geo.secondary.worker` on the secondary) with a pidfile and a log file in its node root, the way
GDK's runit services keep a pid and a log per service. A pidfile whose process is gone, or
belongs to some other program, is stale and is removed rather than trusted. A service that
runs without a pidfile (Ctrl-C landed between starting it and writing the pidfile) is found
by its command line and adopted, never started a second time.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.project import NodePaths

MODULES = {"primary": "gdk_geo.primary", "secondary": "gdk_geo.secondary"}
# What earlier releases ran: a service started by one of them is still ours to find, stop
# and replace after an upgrade.
LEGACY_MODULES = {"primary": ("gdk_geo.primary_service",), "secondary": ("gdk_geo.worker",)}


@dataclass(frozen=True)
class ServiceState:
    """What a node's pidfile says and whether it is true."""

    node: str
    pid: int | None
    running: bool
    stale: bool


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_ours(pid: int, paths: NodePaths) -> bool:
    """True when `pid` is this node's service (not a recycled pid of another program)."""
    argv = _cmdline(pid)
    modules = {MODULES[paths.name], *LEGACY_MODULES[paths.name]}
    runs_module = any(a == "-m" and b in modules for a, b in itertools.pairwise(argv))
    return runs_module and str(paths.gitlab_yml) in argv


def _running_instances(paths: NodePaths) -> list[int]:
    """Every process of this node's service found in /proc, recorded in the pidfile or not."""
    return sorted(
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and _is_ours(int(entry.name), paths)
    )


def _find_unrecorded(paths: NodePaths) -> int | None:
    """This node's service found in /proc, for when its pidfile does not name it."""
    instances = _running_instances(paths)
    return instances[0] if instances else None


def state(paths: NodePaths) -> ServiceState:
    """Whether the node's service runs; `stale` when the pidfile does not name it."""
    pid = _read_pid(paths.pidfile)
    if pid is not None and _is_ours(pid, paths):
        return ServiceState(paths.name, pid, True, False)
    unrecorded = _find_unrecorded(paths)
    if unrecorded is not None:
        return ServiceState(paths.name, unrecorded, True, pid is not None)
    return ServiceState(paths.name, pid, False, pid is not None)


def start(paths: NodePaths) -> tuple[int, bool]:
    """Start the node's service unless it runs; returns (pid, started_now)."""
    current = state(paths)
    if current.running and current.pid is not None:
        if _read_pid(paths.pidfile) != current.pid:
            atomic_write(paths.pidfile, f"{current.pid}\n")  # adopt it
        return current.pid, False
    if current.stale:
        paths.pidfile.unlink(missing_ok=True)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", MODULES[paths.name], "--config", str(paths.gitlab_yml)]
    with open(paths.service_log, "ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on `invoke` must not take the service down
            close_fds=True,
        )
    atomic_write(paths.pidfile, f"{process.pid}\n")
    return process.pid, True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when it is our child
        if not Path(f"/proc/{pid}").exists() or _is_zombie(pid):
            return True
        time.sleep(0.05)
    return False


def _is_zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text().split(")", 1)[1][:4]
    except OSError:
        return True


def _terminate(pid: int, paths: NodePaths, timeout: float) -> None:
    """SIGTERM `pid`, SIGKILL it after `timeout`; an error if even that does not end it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not _wait_gone(pid, 5.0):
        raise GdkGeoError(
            f"the {paths.name} Geo service (pid {pid}) did not stop",
            fix=f"look at {paths.service_log}, then `kill -9 {pid}`",
        )


def stop(paths: NodePaths, timeout: float = 10.0) -> bool:
    """Stop every process of the node's service; returns whether one was running.

    Every instance, not only the one the pidfile names: an interrupted task can leave one
    started but unrecorded, and a stop that missed it would leave it holding the port.
    """
    current = state(paths)
    pids = set(_running_instances(paths))
    if current.running and current.pid is not None:
        pids.add(current.pid)
    for pid in sorted(pids):
        _terminate(pid, paths, timeout)
    paths.pidfile.unlink(missing_ok=True)
    return bool(pids)


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file (for error messages)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"
