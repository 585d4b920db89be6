"""The relay as a background process: start it, find it, reload it, stop it.

One relay process serves one link, named by its spec file: the process is recognised by
its command line (`-m gdk_geo.link.relay --spec <that file>`, absolute), never by a pid
alone, so a stale pidfile whose pid now belongs to another program is removed, not
signalled. A relay running without its pidfile (an interrupted start) is found by the
same command line and adopted, never started twice.

`start` returns only once the relay's own process listens on every route, read from the
kernel's socket table for that pid (psutil): a connect would succeed against any program
holding the port, and would itself be relayed to the target.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.link.spec import read_spec
from gdk_geo.procutil import wait_gone

MODULE = "gdk_geo.link.relay"
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
POLL_SECONDS = 0.02


def command(spec_path: Path, stats_path: Path | None = None) -> list[str]:
    """The relay's command line for the link of `spec_path`."""
    argv = [sys.executable, "-m", MODULE, "--spec", str(Path(spec_path).absolute())]
    return [*argv, "--stats", str(Path(stats_path).absolute())] if stats_path else argv


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return []


def _is_relay_for(argv: list[str], spec_path: Path) -> bool:
    """Whether `argv` runs the relay for this spec (and not another link's, or anything else)."""
    pairs = list(itertools.pairwise(argv))
    spec = str(Path(spec_path).absolute())
    return ("-m", MODULE) in pairs and ("--spec", spec) in pairs


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


def running(pidfile: Path, spec_path: Path) -> int | None:
    """The pid of the relay serving `spec_path`: the one the pidfile names when it is that
    relay, else one found by its command line; None when none runs."""
    pid = _read_pid(pidfile)
    if pid is not None and _is_relay_for(_cmdline(pid), spec_path):
        return pid
    for process in psutil.process_iter(["pid", "cmdline"]):
        if _is_relay_for(process.info["cmdline"] or [], spec_path):
            return int(process.info["pid"])
    return None


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of the relay's log, for an error message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"({path} cannot be read)"


def _listening_ports(pid: int) -> set[int]:
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return set()
    return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}


def start(
    spec_path: Path,
    pidfile: Path,
    log_path: Path,
    *,
    stats_path: Path | None = None,
    timeout: float = START_TIMEOUT,
) -> int:
    """Start the relay for `spec_path` unless it runs, and return its pid once it listens on
    every route. The spec is read first, so a bad one fails here and not in the log; a
    relay that exits or does not listen within `timeout` raises with its log's tail."""
    spec = read_spec(spec_path)
    pid = running(pidfile, spec_path)
    if pid is not None:
        if _read_pid(pidfile) != pid:
            atomic_write(pidfile, f"{pid}\n")  # adopt it
        return pid
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command(spec_path, stats_path),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on the task that started it must not stop it
            close_fds=True,
        )
    atomic_write(pidfile, f"{process.pid}\n")
    wanted = {route.listen[1] for route in spec.routes}
    deadline = time.monotonic() + timeout
    while not wanted <= _listening_ports(process.pid):
        if process.poll() is not None:
            pidfile.unlink(missing_ok=True)
            last = tail(log_path)
            raise GdkGeoError(
                f"the link relay exited at start (status {process.returncode}):\n{last}",
                where=str(log_path),
                fix="fix what its log says, then start the link again",
            )
        if time.monotonic() >= deadline:
            stop(pidfile, spec_path)
            last = tail(log_path)
            raise GdkGeoError(
                f"the link relay did not listen on every route within {timeout:g} s:\n{last}",
                where=str(log_path),
                fix="look at its log; a port may be held by another program",
            )
        time.sleep(POLL_SECONDS)  # the kernel's socket table offers nothing to wait on
    return process.pid


def stop(pidfile: Path, spec_path: Path, timeout: float = STOP_TIMEOUT) -> bool:
    """Stop the relay for `spec_path` (SIGTERM, then SIGKILL after `timeout`) and remove
    the pidfile; whether one was running. Only a process whose command line is that relay's
    is signalled."""
    pid = running(pidfile, spec_path)
    pidfile.unlink(missing_ok=True)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, timeout):
        return True
    if _is_relay_for(_cmdline(pid), spec_path):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    if not wait_gone(pid, 5.0):
        raise GdkGeoError(f"the link relay (pid {pid}) did not stop", fix=f"kill -9 {pid}")
    return True


def reload(pidfile: Path, spec_path: Path) -> bool:
    """Ask the running relay to read its spec now (SIGHUP); whether one runs. Writing the
    spec is enough on its own (the relay sees a new file within 0.2 s): this is for now."""
    pid = running(pidfile, spec_path)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGHUP)
    return True


def read_stats(stats_path: Path) -> dict[str, Any] | None:
    """The counters the relay last wrote (`--stats`), or None when there are none yet."""
    try:
        data = json.loads(stats_path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
