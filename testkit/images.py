"""Synthetic OCI and Docker images, built in memory or streamed, and the ways to push them.

Nothing can be pulled where the tests run, so every image a test or a benchmark needs is
made here: small ones as bytes (`make_image`, `make_index`), big ones as blobs streamed
from a file or generated twice from a seed (`file_blob`, `seeded_blob`), never held whole.
They reach a registry three ways: `skopeo copy` from an OCI layout (real-world shapes),
raw Registry API calls with httpx (`Pusher`, independent of the client under test), or the
project's own `RegistryClient` (`push_streamed`, for images bigger than memory should hold).
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import random
import ssl
import subprocess
import tarfile
import tempfile
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

if TYPE_CHECKING:
    from gdk_geo.registry.client import RegistryClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
ACCEPT_ALL = ", ".join([OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST])
CHUNK = 1 << 20


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def descriptor(media_type: str, digest: str, size: int) -> dict:
    return {"mediaType": media_type, "digest": digest, "size": size}


def image_config(diff_ids: list[str], *, label: str, platform: str = "linux/amd64") -> bytes:
    """An image config over layers with these digests; `label` makes it (and the image) unique."""
    os_name, arch = platform.split("/")
    return canonical(
        {
            "architecture": arch,
            "os": os_name,
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "config": {"Labels": {"nonce": label}},
        }
    )


def image_manifest(config: bytes, layers: list[tuple[str, int]], *, docker: bool = False) -> bytes:
    """An image manifest over `config` and layers given as (digest, size)."""
    return canonical(
        {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
            "config": descriptor(
                DOCKER_CONFIG if docker else OCI_CONFIG, sha256(config), len(config)
            ),
            "layers": [
                descriptor(DOCKER_LAYER if docker else OCI_LAYER, digest, size)
                for digest, size in layers
            ],
        }
    )


# -- images held as bytes ----------------------------------------------------------------


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
        item = descriptor(self.media_type, self.digest, len(self.manifest))
        if platform:
            os_name, arch = platform.split("/")
            item["platform"] = {"os": os_name, "architecture": arch}
        return item


def make_image(
    layers: Iterable[bytes] = (), *, docker: bool = False, platform: str = "linux/amd64"
) -> Image:
    """An image with the given layers (one random layer if none) and a unique config."""
    layers = list(layers) or [os.urandom(2048)]
    config = image_config(
        [sha256(layer) for layer in layers], label=os.urandom(8).hex(), platform=platform
    )
    manifest = image_manifest(
        config, [(sha256(layer), len(layer)) for layer in layers], docker=docker
    )
    return Image(config, layers, manifest, DOCKER_MANIFEST if docker else OCI_MANIFEST)


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
        **descriptor(image.media_type, image.digest, len(image.manifest)),
        "annotations": {"org.opencontainers.image.ref.name": tag},
    }
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    return directory


def tar_layer(files: dict[str, bytes]) -> bytes:
    """An uncompressed tar of `files` (name → bytes): a layer that clients which unpack
    what they pull (Docker, podman, containerd) can apply, unlike random bytes; also what
    `docker import` and `podman import` take as a root filesystem."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def write_oci_archive(path: Path, reference: str, image: Image) -> Path:
    """An OCI layout holding `image`, as one tar file named `reference` in full (what
    `ctr images import` reads: containerd takes the name from `io.containerd.image.name`)."""
    layout = write_oci_layout(path.with_suffix(".layout"), reference.rsplit(":", 1)[-1], image)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"]["io.containerd.image.name"] = reference
    (layout / "index.json").write_text(json.dumps(index))
    with tarfile.open(path, "w") as archive:
        for entry in sorted(layout.rglob("*")):
            archive.add(entry, arcname=str(entry.relative_to(layout)), recursive=False)
    return path


def skopeo_push(layout: Path, tag: str, destination: str, *args: str) -> None:
    """`skopeo copy` an OCI layout to `destination` (host:port/repo:tag), digests preserved.

    Without `args` the destination's certificate is not verified; pass
    `--dest-cert-dir=<dir>` to verify it the way a Docker client does.
    """
    tls = list(args) or ["--dest-tls-verify=false"]
    subprocess.run(
        [
            "skopeo",
            "--insecure-policy",
            "copy",
            "--quiet",
            "--all",
            "--preserve-digests",
            *tls,
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


def push_image(
    registry_url: str,
    repo: str,
    tag: str,
    payload: bytes | None = None,
    *,
    ca_file: Path | None = None,
) -> str:
    """Push a one-layer image (a unique layer unless `payload` is given) from synchronous code;
    returns the manifest digest."""
    image = make_image([payload if payload is not None else os.urandom(64)])

    async def push() -> str:
        async with Pusher(registry_url, ca_file=ca_file) as pusher:
            return await pusher.image(repo, tag, image)

    return asyncio.run(push())


# -- blobs too big to hold ---------------------------------------------------------------


@dataclass(frozen=True)
class Blob:
    """A blob known by its digest and size, whose bytes are produced again on each read."""

    digest: str
    size: int
    read: Callable[[], Iterator[bytes]]
    path: Path | None = None  # the file the bytes are read from, for `file_blob`s

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.read():
            yield chunk


def memory_blob(data: bytes) -> Blob:
    def chunks() -> Iterator[bytes]:
        for start in range(0, len(data), CHUNK):
            yield data[start : start + CHUNK]

    return Blob(sha256(data), len(data), chunks)


def random_blob(size: int) -> Blob:
    return memory_blob(os.urandom(size))


def _file_chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


def file_blob(size: int, directory: Path) -> Blob:
    """`size` random bytes written to a file in `directory` (hashed on the way) and read back."""
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".blob") as handle:
        remaining = size
        while remaining:
            chunk = os.urandom(min(CHUNK * 8, remaining))
            digest.update(chunk)
            handle.write(chunk)
            remaining -= len(chunk)
    path = Path(handle.name)
    return Blob("sha256:" + digest.hexdigest(), size, lambda: _file_chunks(path), path)


def seeded_blob(seed: str, size: int) -> Blob:
    """`size` pseudo-random bytes from `seed`: generated once to hash, again to send."""

    def chunks() -> Iterator[bytes]:
        rng = random.Random(seed)
        remaining = size
        while remaining:
            n = min(CHUNK, remaining)
            yield rng.randbytes(n)
            remaining -= n

    digest = hashlib.sha256()
    for chunk in chunks():
        digest.update(chunk)
    return Blob("sha256:" + digest.hexdigest(), size, chunks)


async def push_streamed(
    client: RegistryClient, repo: str, tag: str, layers: list[Blob], label: str | None = None
) -> str:
    """Push `layers`, a config and an OCI manifest over them under `tag` with the project's
    own `RegistryClient`, streaming each layer; returns the manifest digest. The config is
    labelled `label` (by default `repo:tag`), so that each push makes its own image."""
    config = image_config([layer.digest for layer in layers], label=label or f"{repo}:{tag}")
    await _upload_missing(client, repo, [*layers, memory_blob(config)])
    manifest = image_manifest(config, [(layer.digest, layer.size) for layer in layers])
    return await client.put_manifest(repo, tag, manifest, OCI_MANIFEST)


async def push_built(client: RegistryClient, repo: str, tag: str, image: Image) -> str:
    """Push an `Image` held as bytes with the project's own `RegistryClient` (which signs
    its tokens, where `Pusher` has none); returns the manifest digest."""
    await _upload_missing(client, repo, [memory_blob(blob) for blob in image.blobs])
    return await client.put_manifest(repo, tag, image.manifest, image.media_type)


async def _upload_missing(client: RegistryClient, repo: str, blobs: list[Blob]) -> None:
    """Upload each blob `repo` does not hold yet, streamed, in order."""
    for blob in blobs:
        if not await client.blob_exists(repo, blob.digest):
            await client.upload_blob(repo, blob.digest, blob.stream(), blob.size)
