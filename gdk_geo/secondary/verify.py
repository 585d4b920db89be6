"""Verification: does a repository on the secondary hold the same tags as on the primary?

Like GitLab's Geo verification for container repositories, each side is reduced to a
checksum of its sorted tag→digest pairs; equal checksums mean equal repositories. Unlike a
bare checksum, `compare_repository` also says which tags differ, so a mismatch can be
explained (and sent back to sync) without another round trip.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.registry.client import RegistryClient, gather_all
from gdk_geo.registry.errors import RegistryError, RepositoryNotFound
from gdk_geo.secondary.clients import registry_clients
from gdk_geo.secondary.referrers import wanted_referrers
from gdk_geo.secondary.repository_index import RepositoryIndex
from gdk_geo.secondary.tracking import TrackingDB

T = TypeVar("T")
logger = logging.getLogger("gdk_geo.worker")


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
    missing_referrers: dict[str, str] = field(default_factory=dict)  # referrer → its subject

    @property
    def clean(self) -> bool:
        """True when both sides hold exactly the same tags at the same digests, and the
        secondary has every referrer (signature, SBOM...) the primary has of them."""
        return self.source_checksum == self.target_checksum and not self.missing_referrers


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
            read_side("primary", source, tag_digests(source, repository, concurrency=concurrency)),
            read_side(
                "secondary", target, tag_digests(target, repository, concurrency=concurrency)
            ),
        ]
    )
    found = diff(repository, source_digests, target_digests)
    wanted = await read_side(
        "primary", source, wanted_referrers(source, repository, source_digests)
    )
    if not wanted:
        return found
    present = await read_side("secondary", target, target.head_manifests(repository, wanted))
    missing = {referrer: s for referrer, s in wanted.items() if referrer not in present}
    return replace(found, missing_referrers=missing)


async def verify_registries(
    settings: SecondaryWorkerSettings, primary_registry_url: str | None = None
) -> list[RepositoryDiff]:
    """Compare every repository either registry knows, for `invoke geo.verify`.

    Both catalogs count: a repository only on the secondary is a difference too (it should
    have been deleted). Listing either catalog failing raises; never "nothing to compare".
    `primary_registry_url` is the primary registry itself: verification must not trust the
    secondary's `primary_api_url`, which may point somewhere else (even at the secondary).
    """
    if primary_registry_url:
        settings = replace(settings, primary_api_url=primary_registry_url)
    async with registry_clients(settings) as (source, target):
        names = sorted(
            set(await read_side("primary", source, source.catalog()))
            | set(await read_side("secondary", target, target.catalog()))
        )
        return await gather_all([compare_repository(source, target, name) for name in names])


class SideUnreadable(RegistryError):
    """One side of a verification could not be read: which side, at which URL, and why."""

    def __init__(self, side: str, url: str, cause: RegistryError) -> None:
        super().__init__(str(cause), status=cause.status, code=cause.code)
        self.side = side
        self.url = url


async def read_side(side: str, client: RegistryClient, read: Awaitable[T]) -> T:
    """`read`'s result; a registry failure is re-raised naming `side` and its URL, since a
    message such as "catalog: HTTP 404" does not say which registry answered it."""
    try:
        return await read
    except SideUnreadable:
        raise
    except RegistryError as exc:
        raise SideUnreadable(side, str(client.base_url), exc) from exc


def unreachable(exc: SideUnreadable, nodes: Mapping[str, str] | None = None) -> tuple[str, str]:
    """(one line, its fix) for `invoke geo.verify` when a registry could not be read.

    Verification cannot say anything about a side it cannot list, so it stops at the first
    such failure; the line names the side and URL, the fix what makes that side readable.
    `nodes` names the node behind each side ("primary" and "secondary" → "dc1", "dc3"):
    the fix must name the node to look at, and a side is a role, not a node's name.
    """
    reason = " ".join(str(exc).split())
    node = (nodes or {}).get(exc.side, "")
    return f"cannot read the {exc.side} registry at {exc.url}: {reason}", unreadable_fix(node)


def unreadable_fix(node: str) -> str:
    """What makes an unreadable registry readable: start what is down, read why it stopped
    (in `node`'s log; every node's log when the node behind that side is not known)."""
    logs = f"`invoke geo.logs --node {node}`" if node else "`invoke geo.logs`"
    return f"start it with `invoke geo.setup`; {logs} shows why it stopped"


def diff_summary(diff: RepositoryDiff) -> str:
    """A verification failure in one line, for the admin page's "last failure"."""
    parts = [
        f"{label}: {', '.join(sorted(tags))}"
        for label, tags in (
            ("missing", diff.missing),
            ("only on the secondary", diff.extra),
            ("different digest", diff.mismatched),
            ("referrers missing", diff.missing_referrers),
        )
        if tags
    ]
    return "; ".join(parts) or "checksums differ"


def record_verification(db: TrackingDB, index: RepositoryIndex, found: RepositoryDiff) -> bool:
    """Record one verification's outcome; True when the repository was queued for sync.

    The one place a verification is written down, whoever ran it (the worker's verification
    and re-checks, a reverify pass, `geo.verify` in-process), so all of them leave the same
    trace: the verification state with its reason, and the tracking row either checked
    (equal sides: backfill's re-check is no longer due) or pending (the sync repairs it).

    `mark_checked` only updates a row that exists, and that is what we want: a tracking row
    records what *sync* did, so a verification must not invent one. A repository both sides
    hold identically but nobody tracks yet (a moved-aside database, a reverify of the whole
    catalog) gets its row from the next backfill, by a sync; checking for the row first, as
    the reverify pass did, only cost a query for the same outcome.
    """
    index.record(found.repository, found.clean, None if found.clean else diff_summary(found))
    if found.clean:
        db.mark_checked(found.repository, found.target_checksum)
        return False
    db.mark_pending(found.repository)
    return True


async def verify_and_record(
    source: RegistryClient,
    target: RegistryClient,
    repository: str,
    db: TrackingDB,
    index: RepositoryIndex,
) -> RepositoryDiff:
    """Compare `repository` on both sides and record the outcome (`record_verification`).

    A side that cannot be read raises (`SideUnreadable`) and records nothing: "could not
    ask" is never "equal", nor "differs".
    """
    found = await compare_repository(source, target, repository)
    if record_verification(db, index, found):
        logger.warning(
            "verification of %s: secondary differs (%s): queued for sync",
            repository,
            diff_summary(found),
        )
    return found


def queue_for_sync(settings: SecondaryWorkerSettings, diffs: list[RepositoryDiff]) -> list[str]:
    """Record the outcomes of `geo.verify` in-process; the names queued for sync.

    A difference `geo.verify` reports is one the worker repairs at its next look at the
    database (at most 30 s), or `geo.sync --all` now; reporting it without queueing left a
    tag pushed straight to the secondary in place until the worker's own verification.
    Each outcome is recorded as the worker records its own, so the admin page shows the
    failed verification too. Nothing to record opens nothing.
    """
    if not diffs:
        return []
    db = TrackingDB(settings.tracking_db_path)
    try:
        index = RepositoryIndex(settings.tracking_db_path)
        try:
            return [d.repository for d in diffs if record_verification(db, index, d)]
        finally:
            index.close()
    finally:
        db.close()
