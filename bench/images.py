"""Generate images and push them straight to a registry (no pulls are possible here).

Blobs are pushed with the project's own RegistryClient; the manifests are plain OCI image
manifests. A blob bigger than memory should hold is written to a temporary file first
(hashed on the way) and streamed from there.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from gdk_geo.registry.client import RegistryClient

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
CHUNK = 1 << 20


@dataclass(frozen=True)
class Blob:
    """A blob's descriptor plus where its bytes are (in memory or in a file)."""

    digest: str
    size: int
    data: bytes | None = None
    path: Path | None = None

    def descriptor(self, media_type: str) -> dict:
        return {"mediaType": media_type, "digest": self.digest, "size": self.size}


def blob(data: bytes) -> Blob:
    return Blob("sha256:" + hashlib.sha256(data).hexdigest(), len(data), data=data)


def random_blob(size: int) -> Blob:
    return blob(os.urandom(size))


def random_file_blob(size: int, directory: Path) -> Blob:
    """A random blob of `size` bytes written to disk (for layers too big for memory)."""
    digest = hashlib.sha256()
    with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".blob") as handle:
        remaining = size
        while remaining:
            chunk = os.urandom(min(CHUNK * 8, remaining))
            digest.update(chunk)
            handle.write(chunk)
            remaining -= len(chunk)
    return Blob("sha256:" + digest.hexdigest(), size, path=Path(handle.name))


async def _chunks(item: Blob) -> AsyncIterator[bytes]:
    if item.data is not None:
        for start in range(0, item.size, CHUNK):
            yield item.data[start : start + CHUNK]
        return
    assert item.path is not None
    with open(item.path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            yield chunk


async def push_blob(client: RegistryClient, repo: str, item: Blob) -> None:
    if not await client.blob_exists(repo, item.digest):
        await client.upload_blob(repo, item.digest, _chunks(item), item.size)


def config_blob(unique: str, layers: list[Blob]) -> Blob:
    body = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Labels": {"bench": unique}},
        "rootfs": {"type": "layers", "diff_ids": [b.digest for b in layers]},
    }
    return blob(json.dumps(body).encode())


def manifest_for(config: Blob, layers: list[Blob]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(OCI_CONFIG),
            "layers": [b.descriptor(OCI_LAYER) for b in layers],
        }
    ).encode()


async def push_image(
    client: RegistryClient, repo: str, tag: str, layers: list[Blob], unique: str | None = None
) -> str:
    """Push the layers, a config and a manifest under `tag`; return the manifest digest."""
    config = config_blob(unique or f"{repo}:{tag}", layers)
    for item in [*layers, config]:
        await push_blob(client, repo, item)
    return await client.put_manifest(repo, tag, manifest_for(config, layers), OCI_MANIFEST)
