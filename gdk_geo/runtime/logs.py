"""`geo.logs`: every log of the chosen nodes as one stream, in time order.

Following one request through the system means reading four logs side by side: the primary
registry's (which received the push and sent the notification), the primary Geo service's
(which recorded the event), the secondary worker's (which synced) and the secondary
registry's (which received the copy). Here they are one stream, each line prefixed with
its node and source:

    primary registry   | 2024-05-01 12:00:00,120+0000 time="…" msg="response completed" …
    primary geo        | 2024-05-01 12:00:00,123+0000 INFO gdk_geo…: registry notification …

The two sources keep time differently, so each line gets one comparable instant first:
Docker stamps container output in RFC 3339 UTC (with nanoseconds), while the Geo services'
logs write `YYYY-MM-DD HH:MM:SS,mmm+hhmm`, local time with its UTC offset (`log_format.py`;
an older release's lines have no offset and are read as local time). Registry lines are
shown in that same local format so the column reads the same all the way down. A line
without a timestamp (a traceback, an uvicorn warning) belongs to the line before it.

The history is merged by time (`heapq.merge` keeps each log's own order); with `--follow`,
new lines are printed as they arrive, one thread per log, until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import heapq
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors
from requests.exceptions import RequestException

from gdk_geo.errors import ConfigError
from gdk_geo.project import Project, record
from gdk_geo.runtime import containers, engines, sites
from gdk_geo.settings import Settings

NANOS = 1_000_000_000
SOURCE_WIDTH = len("secondary registry")
POLL_SECONDS = 0.25  # how often a followed file is looked at, and a stopped container

_GEO_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3})([+-]\d{4})?\b")
_DOCKER_TIMESTAMP = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?Z")

Emit = Callable[["LogLine"], None]


@dataclass(frozen=True)
class LogLine:
    """One line of one log, with the instant it was written (ns since the epoch, UTC)."""

    at: int
    source: str  # "primary registry", "secondary geo", ...
    text: str

    def render(self) -> str:
        return f"{self.source:<{SOURCE_WIDTH}} | {self.text}"


# --- timestamps ---------------------------------------------------------------------------


def geo_timestamp(line: str) -> int | None:
    """The instant a Geo service line was logged: local time with its UTC offset
    (`gdk_geo.node.log_format`), or without one in an older release's lines."""
    match = _GEO_TIMESTAMP.match(line)
    if match is None:
        return None
    if match.group(3):
        moment = datetime.strptime(match.group(1) + match.group(3), "%Y-%m-%d %H:%M:%S%z")
    else:
        moment = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").astimezone()
    return int(moment.timestamp()) * NANOS + int(match.group(2)) * 1_000_000


def docker_timestamp(stamp: str) -> int | None:
    """Docker's RFC 3339 UTC timestamp (nanoseconds, trailing zeros trimmed) as an instant."""
    match = _DOCKER_TIMESTAMP.fullmatch(stamp)
    if match is None:
        return None
    seconds = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    fraction = (match.group(2) or "").ljust(9, "0")
    return int(seconds.timestamp()) * NANOS + int(fraction)


def local_time(at: int) -> str:
    """An instant in the Geo logs' own format, so every line's time reads alike."""
    moment = datetime.fromtimestamp(at // NANOS).astimezone()
    return f"{moment:%Y-%m-%d %H:%M:%S},{at % NANOS // 1_000_000:03d}{moment:%z}"


# --- the Geo service's log file -----------------------------------------------------------


class GeoLog:
    """A node's `log/geo.log`: read it whole, then follow what is appended."""

    def __init__(self, node: str, path: Path) -> None:
        self.source = f"{node} geo"
        self.path = path
        self.offset = 0
        self.last_at = 0

    def history(self, tail: int = 0) -> list[LogLine]:
        """Every line so far (the last `tail` when given), and remember where the file ended."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        self.offset = len(data)
        lines = self._lines(data.decode(errors="replace").splitlines())
        return lines[-tail:] if tail else lines

    def follow(self, emit: Emit, stop: threading.Event) -> None:
        """Emit appended lines until `stop`; a file that shrank was rotated: read it afresh."""
        pending = b""
        while not stop.wait(POLL_SECONDS):
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                continue
            if size < self.offset:
                self.offset, pending = 0, b""
            if size == self.offset:
                continue
            with self.path.open("rb") as file:
                file.seek(self.offset)
                data = pending + file.read(size - self.offset)
            self.offset = size
            complete, newline, pending = data.rpartition(b"\n")
            if newline:
                for line in self._lines(complete.decode(errors="replace").split("\n")):
                    emit(line)

    def _lines(self, texts: Iterable[str]) -> list[LogLine]:
        lines = []
        for text in texts:
            self.last_at = geo_timestamp(text) or self.last_at
            lines.append(LogLine(self.last_at, self.source, text))
        return lines


# --- the registry container ---------------------------------------------------------------


class RegistryLog:
    """A node's container output, as Docker keeps it (with its timestamps): its registry's,
    or (`what` "geo") its Geo service's, on an engine where that runs as a container."""

    def __init__(
        self, node: str, client: docker.DockerClient, container_name: str, what: str = "registry"
    ) -> None:
        self.source = f"{node} {what}"
        self.client = client
        self.container_name = container_name
        self.last_at = 0

    def history(self, tail: int = 0) -> list[LogLine]:
        container = containers.find(self.client, self.container_name)
        if container is None:
            return []
        raw = container.logs(timestamps=True, tail=tail or "all")
        return list(self._lines(raw.decode(errors="replace").splitlines()))

    def follow(self, emit: Emit, stop: threading.Event) -> None:
        """Emit new output until `stop`, picking the container up again after a restart.

        Docker's `since` is a time, so a reconnect may repeat the last lines: a line not
        newer than the last one emitted is dropped.
        """
        if not self.last_at:
            self.last_at = time.time_ns()
        while not stop.is_set():
            # The container may be gone, restarting or recreated, the engine briefly away:
            # all of that ends one stream, and we try again shortly.
            with contextlib.suppress(docker.errors.DockerException, RequestException):
                self._stream(emit, stop)
            stop.wait(POLL_SECONDS)

    def _stream(self, emit: Emit, stop: threading.Event) -> None:
        """Emit the running container's output since the last line, until it stops."""
        container = containers.find(self.client, self.container_name)
        if container is None or container.status != "running":
            return
        seen_until = self.last_at
        stream = container.logs(stream=True, follow=True, timestamps=True, since=seen_until / NANOS)
        for line in self._lines(_split_lines(stream)):
            if line.at > seen_until:
                emit(line)
            if stop.is_set():
                return

    def _lines(self, texts: Iterable[str]) -> Iterator[LogLine]:
        """Lines as they come (a generator, so a followed stream is shown as it arrives)."""
        for raw in texts:
            stamp, _, text = raw.partition(" ")
            at = docker_timestamp(stamp)
            if at is None:  # not a Docker-stamped line: keep it whole, at the previous time
                yield LogLine(self.last_at, self.source, raw)
                continue
            self.last_at = at
            yield LogLine(at, self.source, f"{local_time(at)} {text}")


def _split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Whole lines from a stream of byte chunks that may split or join them."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *complete, pending = pending.split(b"\n")
        for line in complete:
            yield line.decode(errors="replace")
    if pending:
        yield pending.decode(errors="replace")


# --- both together ------------------------------------------------------------------------

Source = GeoLog | RegistryLog


def sources(project: Project, node: str | None, client: docker.DockerClient | None) -> list[Source]:
    """The logs of `node` (or of every node): the registry's when an engine answers, the Geo log.

    With a broken gdk.yml the logs are those of what the project last started (its record):
    that is when they are needed most. Another project's container is never shown.
    """
    cfg = None
    try:
        cfg = project.load()
        names = list(cfg.node_names)
        container_names = {name: containers.container_name(cfg, name) for name in names}
        roots = {name: project.node(cfg, name) for name in names}
    except ConfigError:
        started = record.read(project)
        if not started:
            raise
        recorded = started[-1]  # the latest: what runs unless it was stopped since
        names = recorded.node_names
        container_names = {name: recorded.container_name(name) for name in names}
        roots = {paths.name: paths for paths in recorded.nodes}
    chosen: list[Source] = []
    for name in [node] if node else names:
        if cfg is not None and cfg.node(name).engine.is_remote:
            chosen += _site_sources(project, cfg, name)
            continue
        if client is not None:
            containers.find_ours(client, container_names[name], str(project.root))
            chosen.append(RegistryLog(name, client, container_names[name]))
        chosen.append(GeoLog(name, roots[name].service_log))
    return chosen


def _site_sources(project: Project, cfg: Settings, node: str) -> list[Source]:
    """The logs of a node on an engine of its own: both are its containers' output there."""
    site = engines.connect(cfg.node(node))
    names = sites.SiteNames(cfg.docker.container_prefix, node)
    registry = containers.container_name(cfg, node)
    containers.find_ours(site, registry, str(project.root))
    return [RegistryLog(node, site, registry), RegistryLog(node, site, names.service, "geo")]


def history(chosen: list[Source], tail: int = 0) -> Iterator[LogLine]:
    """Every line so far of every source, merged by time (each source's own order kept)."""
    return heapq.merge(*(source.history(tail) for source in chosen), key=lambda line: line.at)


def follow(chosen: list[Source], emit: Emit, stop: threading.Event) -> None:
    """Emit new lines of every source as they arrive, until `stop` is set (blocks)."""
    lines: queue.Queue[LogLine] = queue.Queue()
    for source in chosen:
        threading.Thread(
            target=source.follow, args=(lines.put, stop), name=source.source, daemon=True
        ).start()
    while not stop.is_set():
        try:
            emit(lines.get(timeout=POLL_SECONDS))
        except queue.Empty:
            continue
