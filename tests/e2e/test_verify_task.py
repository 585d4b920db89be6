"""`invoke geo.verify` when a registry cannot be read: one line, the fix, exit 2."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from helpers import invoke, ports_yml, seed_secrets, write_gdk_yml

from testkit.net import free_ports


def _rendered_project(root: Path) -> Path:
    """A project rendered on free ports with no registry running: the primary is "down"."""
    write_gdk_yml(root, ports_yml(*free_ports(4)))
    seed_secrets(root)
    done = invoke(root, "geo.reconfigure")
    assert done.returncode == 0, done.stderr
    return root / ".gdk-geo/secondary/config/gitlab.yml"


def _assert_one_line_and_fix(result) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    note, *lines = result.stderr.splitlines()
    # No worker runs, or it reads another primary: the task says so and verifies in-process
    # (issue 15).
    assert note.startswith("note: the Geo worker "), note
    assert note.endswith("verifying in this process"), note
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("✗ cannot read the primary registry at ")
    assert lines[1].startswith("  fix:   ") and "invoke geo.setup" in lines[1]


def test_verify_with_the_primary_down(tmp_path: Path) -> None:
    """Issue 13 #15: this was a raw RegistryUnavailable traceback."""
    _rendered_project(tmp_path)
    _assert_one_line_and_fix(invoke(tmp_path, "geo.verify"))


class _NotARegistry(BaseHTTPRequestHandler):
    """A web server that is not a registry: every path is 404 with an HTML body."""

    def do_GET(self) -> None:
        body = b"<html>not found</html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def test_verify_with_a_wrong_primary_url(tmp_path: Path) -> None:
    """Issue 13 #15: a URL that answers, but not as a registry. The rendered gitlab.yml is
    edited directly, as an outdated or hand-made one would read, because reconfigure may
    refuse such a URL before it is ever rendered."""
    gitlab_yml = _rendered_project(tmp_path)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotARegistry)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        text = gitlab_yml.read_text()
        start = text.index("primary_api_url: ")
        end = text.index("\n", start)
        gitlab_yml.write_text(text[:start] + f"primary_api_url: {url}" + text[end:])
        _assert_one_line_and_fix(invoke(tmp_path, "geo.verify"))
    finally:
        server.shutdown()
        server.server_close()
