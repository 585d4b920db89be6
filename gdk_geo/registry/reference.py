"""The distribution grammar (repository names, tags, digests) and the manifest media types.

One copy for the client, the notification triage and the sync: names and references end
up in URL paths, so everything that builds a path checks its parts here first.
"""

from __future__ import annotations

import hashlib
import re

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


OCI_INDEX = "application/vnd.oci.image.index.v1+json"


MANIFEST_MEDIA_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)


INDEX_MEDIA_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})


ACCEPT_MANIFESTS = ", ".join(MANIFEST_MEDIA_TYPES)


_REPOSITORY = re.compile(
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
)


_TAG = re.compile(r"[\w][\w.-]{0,127}")


_DIGEST = re.compile(r"(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})")


def check_repository(name: str) -> str:
    """`name` if it is a valid repository name; names end up in URL paths, so refuse others."""
    if not _REPOSITORY.fullmatch(name):
        raise ValueError(f"invalid repository name: {name!r}")
    return name


def check_digest(digest: str) -> str:
    """`digest` if it is a sha256/sha512 digest in canonical form."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"invalid digest: {digest!r}")
    return digest


def check_reference(reference: str) -> str:
    """`reference` if it is a valid tag or digest."""
    if not (_TAG.fullmatch(reference) or _DIGEST.fullmatch(reference)):
        raise ValueError(f"invalid tag or digest: {reference!r}")
    return reference


def is_tag(reference: str) -> bool:
    """True for a valid tag name."""
    return _TAG.fullmatch(reference) is not None and not is_digest(reference)


def is_digest(reference: str) -> bool:
    """True for a digest reference, False for a tag."""
    return _DIGEST.fullmatch(reference) is not None


def hasher_for(digest: str) -> hashlib._Hash:
    return hashlib.new(check_digest(digest).split(":", 1)[0])


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    """The content digest of `data` in `algorithm:hex` form."""
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
