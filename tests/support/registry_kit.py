"""Test tools for tests/integration/sync: a proxy, a scripted server, certificates, logs.

The images and their pushers are the shared kit's (`testkit.images`). The proxy stands in
front of a real registry to paginate tag listings (Distribution 2.8.2 ignores `n` on
tags/list) and to serve wrong bytes on purpose.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from gdk_geo.pki import certs

# -- a proxy in front of a real registry -------------------------------------------------


@dataclass
class ProxyLog:
    tag_pages: int = 0
    catalog_pages: int = 0
    requests: list[str] = field(default_factory=list)


class LocalHTTPServer:
    """A threaded HTTP server on a free loopback port, serving while used as a context manager."""

    def _listen(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class RegistryProxy(LocalHTTPServer):
    """A read-mostly HTTP proxy to a registry that paginates and can lie.

    - `/v2/<repo>/tags/list` is served in pages of `page_size` with `Link` headers, the way
      newer registries and GitLab's do (Distribution 2.8.2 returns every tag at once);
    - `/v2/_catalog` has its `n` capped at `page_size`, so the registry's own Link is used;
    - blobs whose digest is in `corrupt` are served with one byte flipped.
    """

    def __init__(self, upstream: str, *, page_size: int = 100) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=30)
        self.page_size = page_size
        self.corrupt: set[str] = set()
        self.log = ProxyLog()
        self._lock = threading.Lock()
        self._listen(self._handler())

    def __exit__(self, *exc_info: object) -> None:
        super().__exit__(*exc_info)
        self.upstream.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                proxy._serve(self, "GET")

            def do_HEAD(self) -> None:
                proxy._serve(self, "HEAD")

        return Handler

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self.log.requests.append(f"{method} {handler.path}")
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        tags = re.fullmatch(r"/v2/(.+)/tags/list", parts.path)
        if method == "GET" and tags:
            self._tags_page(handler, tags.group(1), query)
            return
        if method == "GET" and parts.path == "/v2/_catalog":
            with self._lock:
                self.log.catalog_pages += 1
            query["n"] = str(min(int(query.get("n", self.page_size)), self.page_size))
            path = f"{parts.path}?{urlencode(query)}"
        else:
            path = handler.path
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("accept",)}
        upstream = self.upstream.request(method, path, headers=headers)
        body = upstream.content
        blob = re.fullmatch(r"/v2/.+/blobs/(sha256:[a-f0-9]{64})", parts.path)
        if blob and blob.group(1) in self.corrupt and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        passed = ("content-type", "docker-content-digest", "link", "www-authenticate")
        self._reply(
            handler,
            upstream.status_code,
            body,
            {k: v for k, v in upstream.headers.items() if k.lower() in passed},
            length=int(upstream.headers.get("content-length", len(body))),
        )

    def _tags_page(self, handler: BaseHTTPRequestHandler, repo: str, query: dict) -> None:
        with self._lock:
            self.log.tag_pages += 1
        upstream = self.upstream.get(f"/v2/{repo}/tags/list")
        if upstream.status_code != 200:
            self._reply(handler, upstream.status_code, upstream.content, {})
            return
        every = sorted(upstream.json()["tags"] or [])
        last = query.get("last", "")
        size = min(int(query.get("n", self.page_size)), self.page_size)
        rest = [tag for tag in every if tag > last]
        page = rest[:size]
        headers = {"Content-Type": "application/json"}
        if len(rest) > size:
            following = urlencode({"n": size, "last": page[-1]})
            headers["Link"] = f'</v2/{repo}/tags/list?{following}>; rel="next"'
        body = json.dumps({"name": repo, "tags": page}).encode()
        self._reply(handler, 200, body, headers)

    @staticmethod
    def _reply(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: bytes,
        headers: dict[str, str],
        length: int | None = None,
    ) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(body) if length is None else length))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(body)


# -- a scripted server ------------------------------------------------------------------

Reply = tuple[int, dict[str, str], bytes]


class ScriptedServer(LocalHTTPServer):
    """A local HTTP server whose every answer comes from `answer(method, path, headers)`.

    For the failure modes a healthy registry won't produce on demand: 503 storms,
    authentication challenges, bodies cut short (a `Content-Length` header larger than the
    body). Requests are recorded in `seen`.
    """

    def __init__(self, answer) -> None:  # answer: (str, str, dict[str, str]) -> Reply
        self.answer = answer
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length", 0) or 0)
                if length:
                    self.rfile.read(length)
                headers = dict(self.headers.items())
                server.seen.append((self.command, self.path, headers))
                status, reply_headers, body = server.answer(self.command, self.path, headers)
                length = int(reply_headers.pop("Content-Length", len(body)))
                if length > len(body):  # a body cut short: hang up after it, like a crash
                    self.close_connection = True
                RegistryProxy._reply(self, status, body, reply_headers, length=length)

            do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _any

        self._listen(Handler)


# -- certificates ------------------------------------------------------------------------


def make_certificates(directory: Path) -> Path:
    """The project's own CA and `registry_host.crt`/`registry_host.key` (certs.py) in `directory`.

    Returns `directory/ca.crt`. The key is made readable by the registry, which runs as
    another user inside its container.
    """
    state = directory / "state"
    report = certs.ensure_certificates(state, "localhost", directory, state / "secondary")
    report.key.chmod(0o644)
    ca_path = directory / "ca.crt"
    shutil.copyfile(report.ca_certificate, ca_path)
    return ca_path


# -- registry logs -----------------------------------------------------------------------

_ACCESS_LINE = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1" (\d{3})')


def access_log(logs: str) -> list[tuple[str, str, int]]:
    """(method, uri, status) for every request in a Distribution registry's access log."""
    return [(m, uri, int(status)) for m, uri, status in _ACCESS_LINE.findall(logs)]
