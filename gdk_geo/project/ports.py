"""Ports: every listener of every node gets its own port, and nobody else holds it.

The seed leaves port picking to the developer, and a collision shows up late and vague: a
registry container that exits with "address already in use", or worse, two services on one
port answering each other's clients. So before anything starts we check the whole set at
once and report every problem in one error that names the gdk.yml key, the port and, when
the system tells us (psutil), the process holding it.
"""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Callable, Collection, Iterable, Mapping

import psutil

from gdk_geo.errors import GdkGeoError

MIN_PORT = 1
MAX_PORT = 65535
COMMAND_LIMIT = 80
SUGGESTION_TRIES = 100


def check_ports(
    listeners: Mapping[str, int],
    *,
    ours: Callable[[int], bool] | Collection[int] = frozenset(),
    host: str = "127.0.0.1",
    hosts: Mapping[str, str] | None = None,
) -> None:
    """Raise one GdkGeoError listing every duplicate, out-of-range or taken port.

    `listeners` maps gdk.yml key paths (`geo.primary.registry.port`) to ports. `ours` names
    ports our own running nodes hold (on restart), which count as free; it is either a set
    or a predicate so the caller can ask Docker lazily. `hosts` names the address each
    listener of this machine binds (a node on another engine has none here: its ports are
    not this machine's to check); without it every listener binds `host`.
    """
    is_ours = ours if callable(ours) else ours.__contains__
    keys_by_port: dict[int, list[str]] = {}
    problems: list[tuple[list[str], str]] = []  # (keys concerned, message)
    for key, port in listeners.items():
        if _valid_port(port):
            keys_by_port.setdefault(port, []).append(key)
        else:
            problems.append(([key], f"{key}: {port!r} is not a port (use {MIN_PORT}–{MAX_PORT})"))
    for port, keys in keys_by_port.items():
        if len(keys) > 1:
            both = "both" if len(keys) == 2 else "all"
            problems.append((keys, f"{_join(keys)} {both} use port {port}"))
    where = hosts if hosts is not None else dict.fromkeys(listeners, host)
    for port, keys in keys_by_port.items():
        local = [key for key in keys if key in where]
        if local and not is_ours(port):
            problem = _availability_problem(port, where[local[0]])
            if problem:
                problems.append((keys, f"{_join(keys)}: {problem}"))
    if problems:
        raise _ports_error(problems, listeners, host)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a server could not listen on `host:port` right now.

    We bind with SO_REUSEADDR, as the registry (Go) and uvicorn do: a port whose last
    connections linger in TIME_WAIT after a node stopped is free for them (Linux allows it
    when both the old and the new socket set the option), so it must be free for us too,
    or every quick restart would be refused. A live listener still makes the bind fail.
    When we may not bind at all (a privileged port and no root), a connection attempt
    answers instead.
    """
    family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            if exc.errno == errno.EACCES:
                return _accepts_connections(address, family)
            raise
    return False


def find_holder(port: int) -> str | None:
    """`pid 1234 (python3 -m http.server)` for the process listening on `port`, if visible.

    Best effort: another user's processes are invisible without root, so None is an
    expected answer.
    """
    pids = sorted(holders(port))
    return f"pid {pids[0]} ({_command(pids[0])})" if pids else None


def holders(port: int) -> set[int]:
    """The pids listening on TCP `port`, on any address, IPv4 or IPv6 (those we may see)."""
    return {pid for pid, held in _listeners() if held == port}


def listening_ports(pids: Iterable[int]) -> set[int]:
    """Every TCP port one of `pids` listens on."""
    wanted = set(pids)
    return {port for pid, port in _listeners() if pid in wanted}


def process_tree(pid: int) -> set[int]:
    """`pid` and all its descendants (a container's init and the registry it runs)."""
    if pid <= 0:
        return set()
    try:
        process = psutil.Process(pid)
        return {pid, *(child.pid for child in process.children(recursive=True))}
    except psutil.Error:
        return set()


# --- checking ------------------------------------------------------------------------------


def _valid_port(port: object) -> bool:
    # bool is an int in Python; `true` in gdk.yml is a typo, not port 1.
    is_int = isinstance(port, int) and not isinstance(port, bool)
    return is_int and MIN_PORT <= port <= MAX_PORT


def _availability_problem(port: int, host: str) -> str | None:
    try:
        taken = port_in_use(port, host)
    except OSError as exc:
        return f"cannot listen on {host} port {port} ({exc.strerror or exc})"
    if not taken:
        return None
    holder = find_holder(port)
    held_by = f"held by {holder}" if holder else "held by another process"
    return f"port {port} on {host} is already in use, {held_by}"


def _ports_error(
    problems: list[tuple[list[str], str]], listeners: Mapping[str, int], host: str
) -> GdkGeoError:
    bad_keys = list(dict.fromkeys(key for keys, _ in problems for key in keys))
    suggestion = _suggest_port(listeners, host) or "<port>"
    example = f"`invoke geo.config.set {bad_keys[0]} {suggestion}`"
    count = "1 port problem" if len(problems) == 1 else f"{len(problems)} port problems"
    return GdkGeoError(
        f"{count}:\n" + "\n".join(f"  - {message}" for _, message in problems),
        where="gdk.yml: " + ", ".join(bad_keys),
        fix=f"give each key named above a free port of its own, e.g. {example}",
    )


def _suggest_port(listeners: Mapping[str, int], host: str) -> int | None:
    """The first free port above the configured ones, so the example in the fix just works."""
    configured = {port for port in listeners.values() if _valid_port(port)}
    start = max(configured, default=5000) + 1
    for port in range(start, min(start + SUGGESTION_TRIES, MAX_PORT + 1)):
        if port in configured:
            continue
        with contextlib.suppress(OSError):
            if not port_in_use(port, host):
                return port
    return None


def _accepts_connections(address: tuple, family: socket.AddressFamily) -> bool:
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(address) == 0


def _join(keys: list[str]) -> str:
    if len(keys) == 1:
        return keys[0]
    return ", ".join(keys[:-1]) + " and " + keys[-1]


# --- processes -----------------------------------------------------------------------------


def _listeners() -> list[tuple[int, int]]:
    """(pid, port) of every listening TCP socket whose process we may see."""
    try:
        connections = psutil.net_connections(kind="tcp")
    except (psutil.Error, OSError):
        return []
    return [
        (c.pid, c.laddr.port)
        for c in connections
        if c.status == psutil.CONN_LISTEN and c.pid is not None and c.laddr
    ]


def _command(pid: int) -> str:
    """The command line as typed (kernel threads and zombies have none: fall back to name)."""
    try:
        process = psutil.Process(pid)
        # split() folds newlines (`python -c` scripts) so the message stays on one line.
        command = " ".join(" ".join(process.cmdline()).split()) or process.name()
    except (psutil.Error, OSError):
        return "unknown command"
    if len(command) > COMMAND_LIMIT:
        return command[: COMMAND_LIMIT - 1] + "…"
    return command
