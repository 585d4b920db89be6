"""The manifest model: what a manifest is, and what it points at.

Pure parsing, no I/O: the client (`gdk_geo.registry.client`) fills these from the
registry's answers; the secondary's sync, tag removal, referrers and blob placement read
them. Kept apart from the requests, the model is a leaf anyone can import without pulling
in (or circling back through) the client and its transport.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gdk_geo.registry.reference import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, check_digest

# Layers the registry is not meant to store (Windows base layers): fetched from `urls`.
_FOREIGN_LAYER_TYPES = frozenset(
    {
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    }
)


@dataclass(frozen=True)
class ManifestRef:
    """What a HEAD on a manifest tells: enough to compare tags without downloading."""

    digest: str
    media_type: str
    size: int


@dataclass(frozen=True)
class Manifest:
    """A manifest's exact bytes (re-pushed unchanged so the digest is preserved)."""

    raw: bytes
    media_type: str
    digest: str


@dataclass(frozen=True)
class Descriptor:
    """The part of an OCI/Docker content descriptor a sync needs."""

    digest: str
    size: int | None
    media_type: str
    urls: tuple[str, ...] = ()

    @property
    def foreign(self) -> bool:
        """A layer the registry does not store (it is fetched from `urls` instead)."""
        return bool(self.urls) and self.media_type in _FOREIGN_LAYER_TYPES


class UnsupportedManifest(ValueError):
    """A manifest type we cannot copy faithfully (e.g. Docker schema 1)."""


def references(manifest: Manifest) -> tuple[list[Descriptor], list[Descriptor]]:
    """(child manifests, blobs) a manifest points at: children for an index, else config+layers."""
    if manifest.media_type not in MANIFEST_MEDIA_TYPES:
        raise UnsupportedManifest(f"unsupported manifest media type {manifest.media_type!r}")
    try:
        body = json.loads(manifest.raw)
    except ValueError as exc:
        raise UnsupportedManifest(f"manifest {manifest.digest} is not JSON") from exc
    if manifest.media_type in INDEX_MEDIA_TYPES:
        return [_descriptor(item) for item in body.get("manifests") or []], []
    blobs = [_descriptor(body["config"])] if body.get("config") else []
    blobs += [_descriptor(item) for item in body.get("layers") or []]
    return [], [blob for blob in blobs if not blob.foreign]


def _descriptor(item: dict[str, object]) -> Descriptor:
    size = item.get("size")
    return Descriptor(
        digest=check_digest(str(item.get("digest", ""))),
        size=size if isinstance(size, int) else None,
        media_type=str(item.get("mediaType", "")),
        urls=tuple(str(url) for url in item.get("urls") or ()),  # type: ignore[attr-defined]
    )


def index_entries(raw: bytes) -> list[dict[str, object]]:
    """The `manifests` of an image index; none when it is not one we can read.

    Lenient where `references` is strict: a referrers index is read for what it lists, and
    one we cannot read lists nothing rather than failing the sync.
    """
    try:
        entries = json.loads(raw).get("manifests") or []
    except (ValueError, AttributeError):
        return []
    return [item for item in entries if isinstance(item, dict)]


def media_type_of(content_type: str, raw: bytes) -> str:
    """A manifest's media type: its `Content-Type`, or its `mediaType` field when the
    registry answered with a generic type (some serve `application/json`)."""
    content_type = content_type.split(";")[0].strip()
    if content_type in MANIFEST_MEDIA_TYPES:
        return content_type
    try:
        field = json.loads(raw).get("mediaType")
    except (ValueError, AttributeError):
        field = None
    return field or content_type
