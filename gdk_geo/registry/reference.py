"""The distribution grammar (repository names, tags, digests) and the manifest media types.

The one copy: the registry client, the primary's notification triage, the event feed and
the sync all check names and references here. Names and references end up in URL paths, so
the paths are built here too, from checked parts, each percent-escaped (`*_path`).

The grammar is Distribution's (`reference/regexp.go`), with two deliberate choices:

* `-+` stands for the spec's `[-]*` in a path component: the same names, but no ambiguous
  repetition, so a hostile name cannot make the pattern backtrack for ages;
* every pattern is ASCII-only (`re.ASCII`): `\\w` would otherwise accept "café".

Digests are the algorithms Distribution accepts, each with its exact hex length.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
"""The manifests a sync copies, and asks for (`ACCEPT_MANIFESTS`), best first."""

INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
"""The manifests that point at other manifests rather than at blobs."""

SCHEMA1_MEDIA_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
"""Docker's deprecated schema 1: still a manifest (its push is an event), never copied."""

ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)

DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}

MAX_REPOSITORY_LENGTH = 255  # Distribution's NameTotalLengthMax

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*", re.ASCII)
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(
    "|".join(f"{name}:[a-f0-9]{{{length}}}" for name, length in DIGEST_HEX_LENGTHS.items()),
    re.ASCII,
)


def is_repository(name: str) -> bool:
    """True for a valid repository name: lowercase path components, at most 255 long."""
    return len(name) <= MAX_REPOSITORY_LENGTH and _REPOSITORY.fullmatch(name) is not None


def is_tag(reference: str) -> bool:
    """True for a valid tag: ASCII word characters, dots and dashes, at most 128 long."""
    return _TAG.fullmatch(reference) is not None


def is_digest(reference: str) -> bool:
    """True for `sha256:`, `sha384:` or `sha512:` and the algorithm's lowercase hex."""
    return _DIGEST.fullmatch(reference) is not None


def is_manifest_media_type(media_type: str) -> bool:
    """True for any manifest or index media type (schema 1 included), parameters ignored."""
    bare = media_type.split(";")[0].strip().lower()
    return bare in MANIFEST_MEDIA_TYPES or bare in SCHEMA1_MEDIA_TYPES


def check_repository(name: str) -> str:
    """`name` if it is a valid repository name, else `ValueError`."""
    if not is_repository(name):
        raise ValueError(f"invalid repository name: {name!r}")
    return name


def check_tag(tag: str) -> str:
    """`tag` if it is a valid tag, else `ValueError`."""
    if not is_tag(tag):
        raise ValueError(f"invalid tag: {tag!r}")
    return tag


def check_digest(digest: str) -> str:
    """`digest` if it is a digest in canonical form, else `ValueError`."""
    if not is_digest(digest):
        raise ValueError(f"invalid digest: {digest!r}")
    return digest


def check_reference(reference: str) -> str:
    """`reference` if it is a valid tag or digest, else `ValueError`."""
    if not (is_tag(reference) or is_digest(reference)):
        raise ValueError(f"invalid tag or digest: {reference!r}")
    return reference


def hasher_for(digest: str) -> hashlib._Hash:
    """A fresh hash object of `digest`'s algorithm."""
    return hashlib.new(check_digest(digest).split(":", 1)[0])


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The content digest of `data` in `algorithm:hex` form."""
    if algorithm not in DIGEST_HEX_LENGTHS:
        raise ValueError(f"unsupported digest algorithm: {algorithm!r}")
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


# -- URL paths of the Registry API v2, from checked parts ---------------------------------


def _name(name: str) -> str:
    return quote(check_repository(name), safe="/")


def tags_path(name: str) -> str:
    """`/v2/<name>/tags/list`."""
    return f"/v2/{_name(name)}/tags/list"


def manifest_path(name: str, reference: str) -> str:
    """`/v2/<name>/manifests/<tag or digest>`."""
    return f"/v2/{_name(name)}/manifests/{quote(check_reference(reference), safe=':')}"


def blob_path(name: str, digest: str) -> str:
    """`/v2/<name>/blobs/<digest>`."""
    return f"/v2/{_name(name)}/blobs/{quote(check_digest(digest), safe=':')}"


def uploads_path(name: str) -> str:
    """`/v2/<name>/blobs/uploads/`: where an upload (or a mount) starts."""
    return f"/v2/{_name(name)}/blobs/uploads/"


def referrers_path(name: str, digest: str) -> str:
    """`/v2/<name>/referrers/<digest>`: the OCI 1.1 referrers API."""
    return f"/v2/{_name(name)}/referrers/{quote(check_digest(digest), safe=':')}"
