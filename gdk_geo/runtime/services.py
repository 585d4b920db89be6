"""The bundled Geo services as background processes: start, stop, and tell whether they run.

Each node runs one Python process (`python -m gdk_geo.primary` on the primary,
`python -m gdk_geo.secondary` on a secondary, as its rendered gitlab.yml's `geo.primary`
says) with a pidfile and a log file in its node root, the way GDK's runit services keep a
pid and a log per service. A pidfile whose process is gone, or belongs to some other
program, is stale and is removed rather than trusted. A service that runs without a
pidfile (Ctrl-C landed between starting it and writing the pidfile) is found by its
command line and adopted, never started a second time.

Processes are looked up with psutil. Each service started here carries its project root in
its environment (`GDK_GEO_PROJECT`), so it is still found, and stopped, after `data_dir`
moved and its command line names a directory gdk.yml no longer points at. Next to the
pidfile, `geo.loaded` keeps a hash of the gitlab.yml and signing pair the service started
with, so setup can tell a service running old settings from one running what is there now.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write, files_digest
from gdk_geo.procutil import wait_gone
from gdk_geo.project import NodePaths, roles

MODULES = {"primary": "gdk_geo.primary", "secondary": "gdk_geo.secondary"}
# What earlier releases ran: a service started by one of them is still ours to find, stop
# and replace after an upgrade.
LEGACY_MODULES = {"primary": ("gdk_geo.primary_service",), "secondary": ("gdk_geo.worker",)}
PROJECT_ENV = "GDK_GEO_PROJECT"  # the project root, in each service's environment
NODE_ENV = "GDK_GEO_NODE"  # the node's name: a promotion changes its module, not its name


@dataclass(frozen=True)
class ServiceState:
    """What a node's pidfile says and whether it is true."""

    node: str
    pid: int | None
    running: bool
    stale: bool


def _cmdline(pid: int) -> list[str]:
    try:
        return psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return []


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None


ANY_MODULE = frozenset({*MODULES.values(), *(m for ms in LEGACY_MODULES.values() for m in ms)})


def _runs_module(argv: list[str], node: str | None = None) -> bool:
    """Whether `argv` runs a Geo service: with `node` (a name of the two-node form), the
    module that node ran before it could be promoted."""
    modules = {MODULES[node], *LEGACY_MODULES[node]} if node else ANY_MODULE
    return any(a == "-m" and b in modules for a, b in itertools.pairwise(argv))


def module_of(paths: NodePaths) -> str:
    """The service the node's rendered gitlab.yml asks for: the primary's or a secondary's."""
    believed = roles.believes_primary(paths.gitlab_yml)
    primary = paths.name == "primary" if believed is None else believed
    return MODULES["primary" if primary else "secondary"]


def _is_ours(pid: int, paths: NodePaths) -> bool:
    """True when `pid` is this node's service (not a recycled pid of another program)."""
    argv = _cmdline(pid)
    return _runs_module(argv) and str(paths.gitlab_yml) in argv


def _environment_of(process: psutil.Process) -> dict[str, str]:
    try:
        return process.environ()
    except (psutil.Error, OSError):
        return {}


def _started_for(process: psutil.Process, argv: list[str], paths: NodePaths, root: Path) -> bool:
    """Whether a service runs for this node of project `root`, wherever its node root was:
    by the node name in its environment, or (started before names were recorded) by the
    module the two-node form ran for that name."""
    environment = _environment_of(process)
    if environment.get(PROJECT_ENV) != str(root):
        return False
    if NODE_ENV in environment:
        return environment[NODE_ENV] == paths.name
    return paths.name in MODULES and _runs_module(argv, paths.name)


def _running_instances(paths: NodePaths, project_root: Path | None = None) -> list[int]:
    """Every process of this node's service, recorded in the pidfile or not: by its
    gitlab.yml, or (with `project_root`) by the project it was started for."""
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        argv = process.info["cmdline"] or []
        if not _runs_module(argv):
            continue
        if str(paths.gitlab_yml) in argv or (
            project_root is not None and _started_for(process, argv, paths, project_root)
        ):
            found.append(process.info["pid"])
    return sorted(found)


def _find_unrecorded(paths: NodePaths) -> int | None:
    """This node's service, for when its pidfile does not name it."""
    instances = _running_instances(paths)
    return instances[0] if instances else None


def _started_with(paths: NodePaths) -> tuple[Path, ...]:
    """What a service reads when it starts: its gitlab.yml and the signing pair it mints
    tokens with. A renewed pair must restart the services too: the registries trust the
    new certificate at once, and a service still signing with the old key is refused."""
    return (paths.gitlab_yml, paths.signing_key, paths.signing_certificate)


def settings_hash(paths: NodePaths) -> str | None:
    """The digest of what a service started now would read; None without a gitlab.yml."""
    if not paths.gitlab_yml.exists():
        return None
    try:
        return files_digest(_started_with(paths))
    except OSError:
        return None


def runs_current_settings(paths: NodePaths) -> bool:
    """Whether the running service loaded the gitlab.yml and signing pair there are now.

    A service started without the record (by an earlier release) counts as current only
    when none of them has changed since the process started.
    """
    current = state(paths)
    if not current.running or current.pid is None:
        return False
    try:
        recorded = paths.loaded_settings.read_text().strip()
    except OSError:
        try:
            started = psutil.Process(current.pid).create_time()
            return all(
                path.stat().st_mtime <= started for path in _started_with(paths) if path.exists()
            )
        except (psutil.Error, OSError):
            return False
    return recorded == settings_hash(paths)


def state(paths: NodePaths) -> ServiceState:
    """Whether the node's service runs; `stale` when the pidfile does not name it."""
    pid = _read_pid(paths.pidfile)
    if pid is not None and _is_ours(pid, paths):
        return ServiceState(paths.name, pid, True, False)
    unrecorded = _find_unrecorded(paths)
    if unrecorded is not None:
        return ServiceState(paths.name, unrecorded, True, pid is not None)
    return ServiceState(paths.name, pid, False, pid is not None)


def start(paths: NodePaths, project_root: Path | None = None) -> tuple[int, bool]:
    """Start the node's service unless it runs; returns (pid, started_now)."""
    current = state(paths)
    if current.running and current.pid is not None:
        if _read_pid(paths.pidfile) != current.pid:
            atomic_write(paths.pidfile, f"{current.pid}\n")  # adopt it
        return current.pid, False
    if current.stale:
        paths.pidfile.unlink(missing_ok=True)
    paths.log_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", module_of(paths), "--config", str(paths.gitlab_yml)]
    environment = dict(os.environ, **{NODE_ENV: paths.name})
    if project_root is not None:
        environment[PROJECT_ENV] = str(project_root)
    loaded = settings_hash(paths)
    with open(paths.service_log, "ab") as log:
        process = subprocess.Popen(
            command,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C on `invoke` must not take the service down
            close_fds=True,
        )
    atomic_write(paths.pidfile, f"{process.pid}\n")
    if loaded is not None:
        atomic_write(paths.loaded_settings, loaded + "\n")
    return process.pid, True


def _terminate(pid: int, paths: NodePaths, timeout: float) -> None:
    """SIGTERM `pid`, SIGKILL it after `timeout`; an error if even that does not end it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if wait_gone(pid, timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if not wait_gone(pid, 5.0):
        raise GdkGeoError(
            f"the {paths.name} Geo service (pid {pid}) did not stop",
            fix=f"look at {paths.service_log}, then `kill -9 {pid}`",
        )


def stop(paths: NodePaths, timeout: float = 10.0, project_root: Path | None = None) -> bool:
    """Stop every process of the node's service; returns whether one was running.

    Every instance, not only the one the pidfile names: an interrupted task can leave one
    started but unrecorded, and a stop that missed it would leave it holding the port.
    With `project_root`, also the project's services whose data lives somewhere else now.
    """
    current = state(paths)
    pids = set(_running_instances(paths, project_root))
    if current.running and current.pid is not None:
        pids.add(current.pid)
    for pid in sorted(pids):
        _terminate(pid, paths, timeout)
    paths.pidfile.unlink(missing_ok=True)
    paths.loaded_settings.unlink(missing_ok=True)
    return bool(pids)


def stop_strays(paths: NodePaths, project_root: Path, timeout: float = 10.0) -> bool:
    """Stop this project's service of the node that runs from another node root (started
    before `data_dir` moved): it holds the port the new one needs."""
    strays = [
        pid
        for pid in _running_instances(paths, project_root)
        if str(paths.gitlab_yml) not in _cmdline(pid)
    ]
    for pid in strays:
        _terminate(pid, paths, timeout)
    return bool(strays)


def tail(path: Path, lines: int = 20) -> str:
    """The last `lines` lines of a log file (for error messages)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"
