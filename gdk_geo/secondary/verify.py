"""Verification: does a repository on the secondary hold the same tags as on the primary?

Like GitLab's Geo verification for container repositories, each side is reduced to a
checksum of its sorted tag→digest pairs; equal checksums mean equal repositories. Unlike a
bare checksum, `compare_repository` also says which tags differ, so a mismatch can be
explained (and sent back to sync) without another round trip.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from gdk_geo.node_settings import SecondaryWorkerSettings
from gdk_geo.registry.client import RegistryClient, gather_all
from gdk_geo.registry.errors import RepositoryNotFound
from gdk_geo.secondary.clients import registry_clients


async def tag_digests(
    client: RegistryClient, repository: str, *, concurrency: int = 8
) -> dict[str, str]:
    """tag → manifest digest for every tag of `repository` (HEADs run concurrently, bounded).

    A repository the registry doesn't know has no tags (that is what a deleted repository
    looks like). A tag deleted between the listing and its HEAD is left out. Any other
    registry failure raises: verification must never mistake "could not ask" for "empty".
    """
    try:
        tags = await client.list_tags(repository)
    except RepositoryNotFound:
        return {}
    refs = await client.head_manifests(repository, tags, concurrency=concurrency)
    return {tag: ref.digest for tag, ref in refs.items()}


def checksum(digests: Mapping[str, str]) -> str:
    """sha256 over the sorted `"<tag> <digest>\\n"` lines: equal iff the tag→digest maps are."""
    lines = "".join(f"{tag} {digest}\n" for tag, digest in sorted(digests.items()))
    return hashlib.sha256(lines.encode()).hexdigest()


@dataclass(frozen=True)
class RepositoryDiff:
    """How the secondary's copy of a repository differs from the primary's."""

    repository: str
    source_checksum: str
    target_checksum: str
    missing: dict[str, str] = field(default_factory=dict)  # tag → primary digest
    extra: dict[str, str] = field(default_factory=dict)  # tag → secondary digest
    mismatched: dict[str, tuple[str, str]] = field(
        default_factory=dict
    )  # tag → (primary, secondary)

    @property
    def clean(self) -> bool:
        """True when both sides hold exactly the same tags at the same digests."""
        return self.source_checksum == self.target_checksum


def diff(repository: str, source: Mapping[str, str], target: Mapping[str, str]) -> RepositoryDiff:
    """The difference between two tag→digest maps (pure: no registry involved)."""
    return RepositoryDiff(
        repository=repository,
        source_checksum=checksum(source),
        target_checksum=checksum(target),
        missing={tag: d for tag, d in sorted(source.items()) if tag not in target},
        extra={tag: d for tag, d in sorted(target.items()) if tag not in source},
        mismatched={
            tag: (d, target[tag])
            for tag, d in sorted(source.items())
            if tag in target and target[tag] != d
        },
    )


async def compare_repository(
    source: RegistryClient, target: RegistryClient, repository: str, *, concurrency: int = 8
) -> RepositoryDiff:
    """Read both sides of `repository` at once and compare them."""
    source_digests, target_digests = await gather_all(
        [
            tag_digests(source, repository, concurrency=concurrency),
            tag_digests(target, repository, concurrency=concurrency),
        ]
    )
    return diff(repository, source_digests, target_digests)


async def verify_registries(settings: SecondaryWorkerSettings) -> list[RepositoryDiff]:
    """Compare every repository either registry knows, for `invoke geo.verify`.

    Both catalogs count: a repository only on the secondary is a difference too (it should
    have been deleted). Listing either catalog failing raises; never "nothing to compare".
    """
    async with registry_clients(settings) as (source, target):
        names = sorted(set(await source.catalog()) | set(await target.catalog()))
        return await gather_all([compare_repository(source, target, name) for name in names])
