"""`invoke geo.reconcile --node OLD [--yes]`, and the comparison the loss report reads.

A forced promotion does not wait: the old primary may hold tags its successor never
received. Both questions are the same comparison, made with the verification engine of
`geo.verify`: the tags (and digests) one registry has that the other lacks. During the
promotion, once the old primary takes no more pushes, it is the loss report (`ops.loss`,
`ops.unplanned`); after it, the old primary is fenced (read-only, its worker not syncing:
`render`) and holds those tags until `geo.reconcile --yes` lifts the fence, when its
worker makes it a plain copy of the primary again, dropping them. Nothing is deleted
before that step.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import SecondaryWorkerSettings, load_primary, load_secondary
from gdk_geo.ops.loss import Held
from gdk_geo.project import Project, roles
from gdk_geo.settings import Settings
from gdk_geo.settings.values import duration_seconds


def _settings(project: Project, cfg: Settings, node: str) -> SecondaryWorkerSettings:
    """Read settings for comparing `node`'s registry, whatever role it renders now."""
    paths = project.node(cfg, node)
    try:
        return load_secondary(paths.gitlab_yml)
    except GdkGeoError:  # a primary's gitlab.yml has no worker settings: make them
        replication = cfg.replication(node)  # the declared settings, defaults included
        return SecondaryWorkerSettings(
            node_root=paths.root,
            listen_address=cfg.listen_address,
            port=cfg.node(node).port,
            primary_geo_url="",
            node_token="",
            registry_api_url=cfg.node(node).registry_url,
            ca_file=paths.certificate,
            tracking_db_path=paths.tracking_db,
            replication_enabled=False,
            primary_api_url="",
            backfill_interval=duration_seconds(replication.backfill_interval),
            verification_interval=duration_seconds(replication.verification_interval),
            max_concurrent_repositories=replication.max_concurrent_repositories,
            max_concurrent_blobs=replication.max_concurrent_blobs,
            auth=load_primary(paths.gitlab_yml).auth,  # the one signing pair every node has
        )


def held(project: Project, cfg: Settings, node: str, primary: str) -> list[Held]:
    """The tags `node`'s registry has that `primary`'s lacks or has at another digest."""
    from gdk_geo.secondary.verify import verify_registries

    settings = replace(_settings(project, cfg, node), primary_api_url="")
    diffs = asyncio.run(verify_registries(settings, cfg.node(primary).registry_url))
    found = []
    for diff in diffs:
        found += [Held(diff.repository, tag, digest) for tag, digest in diff.extra.items()]
        found += [
            Held(diff.repository, tag, ours, theirs)
            for tag, (theirs, ours) in diff.mismatched.items()
        ]
    return found


def reconcile(project: Project, node: str, *, yes: bool = False) -> tuple[list[Held], bool]:
    """List what fenced `node` holds that the primary lacks; with `yes` (or when it holds
    nothing) lift the fence, so it becomes a read-write secondary whose worker drops those
    tags. Returns the held tags and whether the fence was lifted."""
    cfg = project.load()
    data_dir = project.data_dir(cfg)
    recorded = roles.current(cfg, data_dir)
    if node not in recorded.fenced:
        raise GdkGeoError(
            f"{node} is not fenced: it holds nothing the primary lacks by a forced promotion",
            fix="`invoke geo.verify` compares a secondary with the primary",
        )
    tags = held(project, cfg, node, cfg.primary_name)
    if tags and not yes:
        return tags, False
    roles.write(data_dir, replace(recorded, fenced=tuple(n for n in recorded.fenced if n != node)))
    return tags, True
