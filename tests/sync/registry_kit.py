"""Test tools for tests/sync: images with random layers, pushers, a proxy, certificates.

Pushes deliberately avoid the client under test: skopeo for real-world shapes, raw httpx
for exact ones. The proxy stands in front of a real registry to paginate tag listings
(Distribution 2.8.2 ignores `n` on tags/list) and to serve wrong bytes on purpose.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from gdk_geo import certs

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
ACCEPT_ALL = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


# -- images ------------------------------------------------------------------------------


@dataclass
class Image:
    """A single-platform image as bytes: config, layers and the manifest over them."""

    config: bytes
    layers: list[bytes]
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.manifest)

    @property
    def blobs(self) -> list[bytes]:
        return [self.config, *self.layers]

    def descriptor(self, platform: str | None = None) -> dict:
        item = {"mediaType": self.media_type, "digest": self.digest, "size": len(self.manifest)}
        if platform:
            os_name, arch = platform.split("/")
            item["platform"] = {"os": os_name, "architecture": arch}
        return item


def make_image(
    layers: Iterable[bytes] = (), *, docker: bool = False, platform: str = "linux/amd64"
) -> Image:
    """An image with the given layers (random ones if none) and a unique config."""
    layers = list(layers) or [os.urandom(2048)]
    os_name, arch = platform.split("/")
    config = canonical(
        {
            "architecture": arch,
            "os": os_name,
            "rootfs": {"type": "layers", "diff_ids": [sha256(layer) for layer in layers]},
            "config": {"Labels": {"nonce": os.urandom(8).hex()}},
        }
    )
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": {
                "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
                "digest": sha256(config),
                "size": len(config),
            },
            "layers": [
                {
                    "mediaType": DOCKER_LAYER if docker else OCI_LAYER,
                    "digest": sha256(layer),
                    "size": len(layer),
                }
                for layer in layers
            ],
        }
    )
    return Image(config, layers, manifest, media_type)


@dataclass
class Index:
    """A multi-platform image: an OCI index or a Docker manifest list over child images."""

    children: dict[str, Image]  # platform -> image
    manifest: bytes
    media_type: str

    @property
    def digest(self) -> str:
        return sha256(self.manifest)


def make_index(platforms: Iterable[str], *, docker: bool = False) -> Index:
    children = {p: make_image(docker=docker, platform=p) for p in platforms}
    media_type = DOCKER_LIST if docker else OCI_INDEX
    manifest = canonical(
        {
            "schemaVersion": 2,
            "mediaType": media_type,
            "manifests": [child.descriptor(p) for p, child in children.items()],
        }
    )
    return Index(children, manifest, media_type)


# -- pushing -----------------------------------------------------------------------------


def write_oci_layout(directory: Path, tag: str, image: Image | Index) -> Path:
    """An OCI image layout holding `image` under `tag` (what `skopeo copy oci:` reads)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> None:
        (blobs / sha256(data).split(":", 1)[1]).write_bytes(data)

    images = list(image.children.values()) if isinstance(image, Index) else [image]
    for one in images:
        for blob in one.blobs:
            put(blob)
        put(one.manifest)
    put(image.manifest)
    (directory / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    entry = {
        "mediaType": image.media_type,
        "digest": image.digest,
        "size": len(image.manifest),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return directory


def skopeo_push(layout: Path, tag: str, destination: str) -> None:
    """`skopeo copy` an OCI layout to `destination` (host:port/repo:tag), digests preserved."""
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            "--dest-tls-verify=false",
            f"oci:{layout}:{tag}",
            f"docker://{destination}",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


class Pusher:
    """Raw Registry API pushes with httpx (independent of the client under test)."""

    def __init__(self, base_url: str, *, ca_file: Path | None = None) -> None:
        verify = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        self.http = httpx.AsyncClient(base_url=base_url, timeout=30, verify=verify)

    async def __aenter__(self) -> Pusher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def blob(self, repo: str, data: bytes) -> str:
        digest = sha256(data)
        head = await self.http.head(f"/v2/{repo}/blobs/{digest}")
        if head.status_code == 200:
            return digest
        start = await self.http.post(f"/v2/{repo}/blobs/uploads/")
        assert start.status_code == 202, start.text
        location = start.url.join(start.headers["Location"])
        done = await self.http.put(
            location.copy_merge_params({"digest": digest}),
            content=data,
            headers={"Content-Type": "application/octet-stream"},
        )
        assert done.status_code == 201, done.text
        return digest

    async def manifest(self, repo: str, reference: str, raw: bytes, media_type: str) -> str:
        response = await self.http.put(
            f"/v2/{repo}/manifests/{reference}", content=raw, headers={"Content-Type": media_type}
        )
        assert response.status_code == 201, response.text
        return response.headers["Docker-Content-Digest"]

    async def image(self, repo: str, tag: str, image: Image) -> str:
        for blob in image.blobs:
            await self.blob(repo, blob)
        return await self.manifest(repo, tag, image.manifest, image.media_type)

    async def index(self, repo: str, tag: str, index: Index) -> str:
        for child in index.children.values():
            await self.image(repo, child.digest, child)
        return await self.manifest(repo, tag, index.manifest, index.media_type)

    async def digest_of(self, repo: str, reference: str) -> str | None:
        response = await self.http.head(
            f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT_ALL}
        )
        return response.headers["Docker-Content-Digest"] if response.status_code == 200 else None

    async def tags(self, repo: str) -> list[str]:
        response = await self.http.get(f"/v2/{repo}/tags/list")
        if response.status_code == 404:
            return []
        return sorted(response.json()["tags"] or [])

    async def delete(self, repo: str, digest: str) -> None:
        response = await self.http.delete(f"/v2/{repo}/manifests/{digest}")
        assert response.status_code == 202, response.text


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
    report = certs.ensure_certificates(state, directory, state / "secondary", "localhost")
    report.key.chmod(0o644)
    ca_path = directory / "ca.crt"
    shutil.copyfile(report.ca_certificate, ca_path)
    return ca_path


# -- registry logs -----------------------------------------------------------------------

_ACCESS_LINE = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE) (\S+) HTTP/1\.1" (\d{3})')


def access_log(logs: str) -> list[tuple[str, str, int]]:
    """(method, uri, status) for every request in a Distribution registry's access log."""
    return [(m, uri, int(status)) for m, uri, status in _ACCESS_LINE.findall(logs)]
