"""Repositories written straight into a stopped registry's storage, in Distribution's layout.

Pushing thousands of small images through the Registry API is set-up, not what a scale
benchmark measures, and it took longer than the measurement itself (5,000 repositories ×
4 tags: over 20 minutes of HTTP round trips). Distribution's filesystem driver keeps
everything as plain files under `<root>/docker/registry/v2/`, so the same content can be
written directly while the registry is stopped, and the registry serves it once started:

    blobs/sha256/<first 2 hex>/<hex>/data                      every blob, manifests included
    repositories/<name>/_layers/sha256/<hex>/link              a blob this repository holds
    repositories/<name>/_manifests/revisions/sha256/<hex>/link a manifest it holds
    repositories/<name>/_manifests/tags/<tag>/current/link     what the tag points to now
    repositories/<name>/_manifests/tags/<tag>/index/sha256/<hex>/link   and has pointed to

Each `link` file holds the digest (`sha256:<hex>`), no newline. The catalog is the
directories that hold `_manifests`. A test proves that a registry serves what is written
here as it serves a push (tests/e2e/test_bench_harness.py).
"""

from __future__ import annotations

from pathlib import Path

from testkit.images import Image, sha256

V2 = Path("docker") / "registry" / "v2"


def _hex(digest: str) -> str:
    algorithm, _, hexdigest = digest.partition(":")
    if algorithm != "sha256" or len(hexdigest) != 64:
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return hexdigest


def _write_link(path: Path, digest: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "link").write_text(digest)


def write_blob(storage: Path, data: bytes) -> str:
    """Store `data` as a blob (once: the blob store is content-addressed); its digest."""
    digest = sha256(data)
    hexdigest = _hex(digest)
    directory = storage / V2 / "blobs" / "sha256" / hexdigest[:2] / hexdigest
    if not (directory / "data").exists():
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "data").write_bytes(data)
    return digest


def repository_dir(storage: Path, name: str) -> Path:
    """Where the registry keeps the links of repository `name`."""
    return storage / V2 / "repositories" / name


def link_layer(storage: Path, name: str, digest: str) -> None:
    """Let repository `name` serve the stored blob `digest` (what a finished upload does)."""
    _write_link(repository_dir(storage, name) / "_layers" / "sha256" / _hex(digest), digest)


def tag_manifest(storage: Path, name: str, tag: str, digest: str) -> None:
    """Record the stored manifest `digest` in `name` and point `tag` at it (a manifest PUT)."""
    manifests = repository_dir(storage, name) / "_manifests"
    hexdigest = _hex(digest)
    _write_link(manifests / "revisions" / "sha256" / hexdigest, digest)
    _write_link(manifests / "tags" / tag / "current", digest)
    _write_link(manifests / "tags" / tag / "index" / "sha256" / hexdigest, digest)


def write_image(storage: Path, name: str, tag: str, image: Image) -> str:
    """`image` (config, layers, manifest) in `name` under `tag`, as a push leaves it; the
    manifest digest. Write while the registry is stopped, as `BenchProject.registry_stopped`
    does: a running registry may be writing the same directories."""
    for blob in image.blobs:
        link_layer(storage, name, write_blob(storage, blob))
    digest = write_blob(storage, image.manifest)
    tag_manifest(storage, name, tag, digest)
    return digest
