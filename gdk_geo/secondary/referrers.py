"""OCI 1.1 referrers: the manifests that point at another through `subject` (signatures,
SBOMs, attestations), found the two ways a registry can offer them.

Clients push a referrer by digest only, so no tag listing ever shows it. A registry with
the referrers API (`GET /v2/<name>/referrers/<digest>`) lists them; one without it, such as
Distribution 2.8, gets them from the client as the `sha256-<hex>` tag fallback: an image
index of the referrers, tagged after the subject's digest. Sync and verification both ask
here, so they agree on what "the referrers of a manifest" are.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.errors import ManifestNotFound
from gdk_geo.registry.manifest import index_entries
from gdk_geo.registry.reference import INDEX_MEDIA_TYPES, is_digest

_FALLBACK_TAG = re.compile(r"sha256-[0-9a-f]{64}")


def fallback_tag(digest: str) -> str:
    """The tag a referrers index hides under for a registry without the API."""
    return digest.replace(":", "-", 1)


def is_fallback_tag(tag: str) -> bool:
    return _FALLBACK_TAG.fullmatch(tag) is not None


async def referrer_digests(
    client: RegistryClient, repository: str, subject: str, tags: Collection[str]
) -> list[str]:
    """Digests of the manifests referring to `subject`: from the API where the registry
    has it, else from the fallback index when `tags` (the repository's) holds its tag."""
    listed = await client.referrers(repository, subject)
    if listed is None:
        tag = fallback_tag(subject)
        if tag not in tags:
            return []
        try:
            index = await client.get_manifest(repository, tag)
        except ManifestNotFound:
            return []  # deleted since the listing
        listed = index_entries(index.raw) if index.media_type in INDEX_MEDIA_TYPES else []
    found = [str(item.get("digest", "")) for item in listed]
    return [digest for digest in found if is_digest(digest)]


async def wanted_referrers(
    source: RegistryClient, repository: str, digests: Mapping[str, str]
) -> dict[str, str]:
    """referrer → subject for every referrer the primary has of a tagged manifest
    (`digests`: the primary's tag → digest)."""
    wanted: dict[str, str] = {}
    for subject in sorted(set(digests.values())):
        for referrer in await referrer_digests(source, repository, subject, digests.keys()):
            wanted.setdefault(referrer, subject)
    return wanted
