"""`invoke geo.sync` on a set-up project: through the worker, and in-process without it.

The output and exit codes are the same either way; only the note on stderr says which ran.
A worker that stops answering in the middle of its progress stream is one ✗ line, its fix
and exit 3, however the stream breaks.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import invoke, ports_yml, running_project, seed_secrets, write_gdk_yml
from registry_login import skopeo_push_image

from gdk_geo.cli.passes import WORKER_STOPPED
from gdk_geo.node.settings import load_secondary
from gdk_geo.project import Project
from gdk_geo.runtime import services
from testkit.net import free_ports

EVENTS_URL = "/api/v4/geo/container_repositories/passes/p1/events"
PLANNED = {"type": "planned", "total": 2}
RESULT = {
    "type": "result",
    "position": 0,
    "repository": "group/app",
    "ok": True,
    "pushed": 1,
    "unchanged": 0,
    "deleted": 0,
    "blobs_copied": 1,
    "blobs_mounted": 0,
    "reason": None,
}


class _DroppingWorker(BaseHTTPRequestHandler):
    """The worker's side of a pass, up to the point where the stream breaks (`server.how`):
    it takes the pass, streams two events, then drops the connection without `done`."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"id": "p1", "events_url": EVENTS_URL}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for event in (PLANNED, RESULT):
            self._chunk(json.dumps(event).encode() + b"\n")
        how = self.server.how  # type: ignore[attr-defined]
        if how == "half an event":
            self._chunk(b'{"type": "result", "posi')
        elif how == "a cut chunk":
            self.wfile.write(b"400\r\n" + b" " * 10)  # announces 1024 bytes, sends 10
        elif how == "a clean end":
            self.wfile.write(b"0\r\n\r\n")  # the stream ends, the pass did not
        self.wfile.flush()
        if how == "a reset":  # SO_LINGER 0: the close sends RST, as a killed process may
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args) -> None:
        pass


@pytest.mark.parametrize("how", ["half an event", "a cut chunk", "a clean end", "a reset"])
def test_a_worker_that_stops_mid_stream_is_one_line_and_exit_3(tmp_path: Path, how: str) -> None:
    """A loopback server plays the worker here, not a worker killed mid-pass: the moment
    between the worker taking a pass and finishing it has no outside sign a test could
    wait for (a kill just before it is the in-process fallback, another case), and a
    killed process breaks its stream in one of these ways only, by chance. Each way is
    made to happen here on purpose, on a real socket, to the real `invoke geo.sync`."""
    write_gdk_yml(tmp_path, ports_yml(*free_ports(4)))
    seed_secrets(tmp_path)
    assert invoke(tmp_path, "geo.reconfigure").returncode == 0
    settings = load_secondary(tmp_path / ".gdk-geo/secondary/config/gitlab.yml")
    server = ThreadingHTTPServer(("127.0.0.1", settings.port), _DroppingWorker)
    server.how = how  # type: ignore[attr-defined]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        result = invoke(tmp_path, "geo.sync", "--all")
    finally:
        server.shutdown()
        server.server_close()
    assert result.returncode == WORKER_STOPPED == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stdout == "", "no result is printed for a pass that did not end"
    line, fix = result.stderr.splitlines()
    assert line.startswith(
        f"✗ the Geo worker at 127.0.0.1:{settings.port} stopped answering during the pass, "
        "after 1 of 2 repositories ("
    ), line
    assert fix.startswith("  fix:   `invoke geo.status` shows whether it still runs"), fix


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    with running_project(tmp_path_factory.mktemp("sync"), "s") as project:
        yield project


@pytest.mark.docker
def test_geo_sync_through_the_worker_then_without_it(project: Project, tmp_path: Path) -> None:
    skopeo_push_image(project, tmp_path, "group/app")
    through = invoke(project.root, "geo.sync", "--repo", "group/app", "--repo", "no/such")
    assert through.returncode == 1, through.stdout + through.stderr
    assert "note:" not in through.stderr, "the worker ran the pass"
    lines = through.stdout.splitlines()
    assert lines[0].startswith("✗ no/such: neither registry has a repository named no/such")
    assert lines[1].startswith("✓ group/app: ") and "deleted; blobs" in lines[1]
    assert lines[2] == "1 synced, 1 failed"

    verified = invoke(project.root, "geo.verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "note:" not in verified.stderr, "the worker ran the verification"
    assert verified.stdout.splitlines()[-1].endswith("repositories compared, 0 differ")

    cfg = project.load()
    services.stop(project.node(cfg, "secondary"))
    alone = invoke(project.root, "geo.sync", "--repo", "group/app")
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert alone.stderr.startswith("note: the Geo worker cannot take this (nothing listens on ")
    assert "syncing in this process" in alone.stderr
    assert alone.stdout.splitlines() == [
        "✓ group/app: 0 pushed, 1 unchanged, 0 deleted; blobs 0 copied, 0 mounted",
        "1 synced, 0 failed",
    ]
