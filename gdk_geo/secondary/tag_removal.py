"""Removing tags from the secondary registry without taking a kept tag down with them.

GitLab deleted a removed tag by digest, which on Distribution deletes every tag on that
digest. `remove_tags` deletes by tag where the registry allows it; where it does not
(Distribution 2.x), it deletes by digest and puts the same manifest bytes straight back
under the kept tags that shared it.
"""

from __future__ import annotations

from collections.abc import Iterable

from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.errors import RegistryError, RepositoryNotFound, TagDeletionUnsupported
from gdk_geo.registry.manifest import ManifestRef, references
from gdk_geo.registry.reference import INDEX_MEDIA_TYPES
from gdk_geo.secondary.blob_locations import BlobLocations
from gdk_geo.secondary.results import RepositorySyncResult

# Errors that fail one tag rather than the whole run: the registry said no, or the
# manifest is not something we can copy.
TAG_ERRORS = (RegistryError, ValueError)


async def remove_tags(
    target: RegistryClient,
    repository: str,
    gone: Iterable[str],
    current: dict[str, ManifestRef],
    kept: dict[str, str],
    result: RepositorySyncResult,
) -> None:
    """Remove `gone` tags from the target without losing any `kept` tag.

    GitLab deleted a removed tag by digest, which on Distribution deletes every tag on that
    digest. We delete by tag where the registry allows it. Distribution 2.x does not, so
    there we delete by digest, and when kept tags (or a kept index) still use that digest,
    we put the same manifest bytes straight back under them (see `_delete_and_restore`).
    """
    by_digest: dict[str, list[str]] = {}
    for tag in sorted(gone):
        try:
            if await target.delete_tag(repository, tag):
                result.deleted_tags.append(tag)
            continue
        except TagDeletionUnsupported:
            by_digest.setdefault(current[tag].digest, []).append(tag)
        except RegistryError as exc:
            result.stale_tags[tag] = f"deleting the tag failed: {exc}"
    if not by_digest:
        return
    try:
        in_use = await digests_in_use(target, repository, kept)
    except TAG_ERRORS as exc:
        for tags in by_digest.values():
            for tag in tags:
                result.stale_tags[tag] = f"could not tell which digests kept tags use: {exc}"
        return
    for digest, tags in by_digest.items():
        sharing = sorted(tag for tag, kept_digest in kept.items() if kept_digest == digest)
        try:
            if digest in in_use:
                await _delete_and_restore(target, repository, digest, sharing, result)
            else:
                await target.delete_manifest(repository, digest)
        except TAG_ERRORS as exc:
            result.stale_tags.update(dict.fromkeys(tags, f"deleting {digest} failed: {exc}"))
            continue
        result.deleted_tags.extend(tags)


async def _delete_and_restore(
    target: RegistryClient,
    repository: str,
    digest: str,
    sharing: list[str],
    result: RepositorySyncResult,
) -> None:
    """Delete `digest`, then put its exact bytes back under the kept tags that shared it.

    On a registry without tag deletion this is the only way to remove one tag of several
    on a digest; it is also what a user of such a primary did to remove it there. The kept
    tags are absent for the moment between the DELETE and the PUTs. A digest used only as
    the child of a kept index is put back by digest, so the index stays whole. A failed
    restore is recorded against the kept tag, so the repository is not `ok` and the next
    sync (which sees the tag missing on the secondary) pushes it again.
    """
    manifest = await target.get_manifest(repository, digest)  # read before deleting
    await target.delete_manifest(repository, digest)
    for reference in sharing or [digest]:
        try:
            await target.put_manifest(repository, reference, manifest.raw, manifest.media_type)
        except TAG_ERRORS as exc:
            result.failed_tags[reference] = f"restoring after removing a sharing tag: {exc}"


async def digests_in_use(target: RegistryClient, repository: str, kept: dict[str, str]) -> set[str]:
    """Digests kept tags point at, plus (recursively) the children of kept indexes."""
    in_use: set[str] = set()
    pending = list(dict.fromkeys(kept.values()))
    while pending:
        digest = pending.pop()
        if digest in in_use:
            continue
        in_use.add(digest)
        ref = await target.head_manifest(repository, digest)
        if ref is None or ref.media_type not in INDEX_MEDIA_TYPES:
            continue
        children, _ = references(await target.get_manifest(repository, digest))
        pending.extend(child.digest for child in children)
    return in_use


async def delete_repository(
    target: RegistryClient,
    repository: str,
    *,
    blob_locations: BlobLocations | None = None,
    max_concurrent_heads: int = 8,
) -> RepositorySyncResult:
    """Remove every tag of `repository` from `target`, without asking the primary.

    For an explicit removal; `sync_repository` does the same by itself when the primary no
    longer has the repository, and is the safer call when in doubt. Distribution keeps the
    repository's name in the catalog; with no tags it is deleted in every sense we check.
    """
    result = RepositorySyncResult(repository, repository_deleted=True)
    try:
        tags = await target.list_tags(repository)
    except RepositoryNotFound:
        tags = []
    except RegistryError as exc:
        result.error = f"listing the secondary failed: {exc}"
        return result.finish()
    try:
        current = await target.head_manifests(repository, tags, concurrency=max_concurrent_heads)
    except RegistryError as exc:
        result.error = f"reading the secondary's tags failed: {exc}"
        return result.finish()
    await remove_tags(target, repository, list(current), current, {}, result)
    if blob_locations is not None and not result.stale_tags:
        blob_locations.forget_repository(repository)
    return result.finish()
