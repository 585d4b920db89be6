"""What a sync pass acts on: decided once, for `invoke geo.sync` and the worker's resync.

The ladder is the same wherever the pass runs: named repositories (less the names neither
registry knows), all of them (the primary's catalog and what only the secondary has), the
failed ones, or by default what the worker would do next: what is due, plus what a
backfill would queue. Both `gdk_geo.secondary.replicator.sync_once` (in-process) and
`gdk_geo.secondary.passes.Passes` (in the worker) ask `plan_sync`, so `geo.sync` means the
same with the worker running or not, and both refuse alike when replication is disabled.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.registry.client import RegistryClient
from gdk_geo.registry.errors import RegistryError, RepositoryNotFound
from gdk_geo.registry.reference import check_repository
from gdk_geo.secondary.results import RepositorySyncResult
from gdk_geo.secondary.tracking import TrackingDB


@dataclass(frozen=True)
class Selection:
    """What a pass acts on: named repositories, all of them, the failed ones, or the default
    (for a resync: what is due, as the scheduler would; for a reverify: all)."""

    repositories: tuple[str, ...] = ()
    all: bool = False
    failed: bool = False

    def __post_init__(self) -> None:
        for name in self.repositories:
            try:
                check_repository(name)
            except ValueError:
                raise ValueError(f"{name!r} is not a repository name") from None


@dataclass(frozen=True)
class SyncPlan:
    """The repositories a sync pass syncs, and the named ones it refuses (as results).

    `claimed`: the names were taken from the due queue and are already marked started (the
    scheduler's way); otherwise whoever syncs them marks them started first.
    """

    names: list[str]
    unknown: list[RepositorySyncResult] = field(default_factory=list)
    claimed: bool = False


def check_replication_enabled(settings: SecondaryWorkerSettings) -> None:
    """Refuse a sync pass on a secondary whose replication is off, with the way to turn it on."""
    if not settings.replication_enabled:
        raise GdkGeoError(
            "registry replication is disabled on the secondary",
            fix="set geo.secondary.registry_replication.enabled: true in gdk.yml, then "
            "`invoke geo.restart`",
        )


async def plan_sync(
    settings: SecondaryWorkerSettings,
    db: TrackingDB,
    source: RegistryClient,
    target: RegistryClient,
    selection: Selection,
) -> SyncPlan:
    """The repositories `selection` names, in the order they are synced.

    Named repositories come first and win over the flags; the default backfills (as
    `gdk_geo.secondary.worker.Worker.backfill_once` does) and claims everything due,
    exactly as the scheduler would. The re-checks that backfill finds due are not syncs:
    they are left to the worker's re-check (a verification), and the repositories stay
    synced meanwhile.
    """
    check_replication_enabled(settings)
    if selection.repositories:
        names = list(dict.fromkeys(selection.repositories))
        unknown = await unknown_repositories(source, target, names, db)
        refused = {result.repository for result in unknown}
        return SyncPlan([name for name in names if name not in refused], unknown)
    if selection.all:
        return SyncPlan(await every_repository(source, target))
    if selection.failed:
        return SyncPlan(db.repositories_in("failed"))
    db.backfill(await primary_catalog(source), settings.backfill_interval)
    return SyncPlan(db.claim_due(sys.maxsize), claimed=True)


async def unknown_repositories(
    source: RegistryClient, target: RegistryClient, names: Sequence[str], db: TrackingDB
) -> list[RepositorySyncResult]:
    """A failed result for each named repository neither registry has heard of.

    Syncing such a name "succeeds" with nothing to copy, and recorded it as synced: a
    typo in `geo.sync --repo` printed ✓ and left a phantom row on the status page. A name
    only the secondary knows is a real sync (its deletion), so it is left alone, and so is
    a name the tracking database has a row for: it was in a catalog once, and its sync is
    what settles it. The others are asked about all at once, not one round trip each.
    """

    async def known(client: RegistryClient, name: str) -> bool:
        try:
            await client.list_tags(name)
        except RepositoryNotFound:
            return False
        except RegistryError:
            return True  # could not ask: the sync itself fails and records why
        return True

    async def unknown(name: str) -> bool:
        return not await known(source, name) and not await known(target, name)

    untracked = [name for name in names if db.get(name) is None]
    verdicts = await asyncio.gather(*(unknown(name) for name in untracked))
    error = "neither registry has a repository named {} (check its spelling)"
    return [
        RepositorySyncResult(name, error=error.format(name)).finish()
        for name, is_unknown in zip(untracked, verdicts, strict=True)
        if is_unknown
    ]


async def secondary_only(primary: Collection[str], target: RegistryClient) -> list[str]:
    """Repositories with tags on the secondary that the primary's catalog (`primary`) lacks.

    Someone pushed them straight to the secondary. Backfill reads only the primary's
    catalog, so without this nothing would ever sync (here: delete) them. A name the
    secondary lists without tags is what a replicated deletion leaves: nothing to do.
    """
    known = set(primary)
    candidates = [name for name in await target.catalog() if name not in known]
    found = []
    for name in candidates:
        try:
            if await target.list_tags(name):
                found.append(name)
        except RepositoryNotFound:
            continue
    return found


async def primary_catalog(source: RegistryClient) -> list[str]:
    """The primary's catalog; a registry that cannot list it is a problem with its fix."""
    try:
        return await source.catalog()
    except RegistryError as exc:
        raise GdkGeoError(
            f"cannot list the primary registry's catalog: {exc}",
            fix="check that the primary registry runs (`invoke geo.status`)",
        ) from None


async def every_repository(source: RegistryClient, target: RegistryClient) -> list[str]:
    """What `geo.sync --all` syncs: the primary's catalog, and what only the secondary has."""
    names = await primary_catalog(source)
    try:
        return names + await secondary_only(names, target)
    except RegistryError as exc:
        raise GdkGeoError(
            f"cannot list the secondary registry's catalog: {exc}",
            fix="check that the secondary registry runs (`invoke geo.status`)",
        ) from None
