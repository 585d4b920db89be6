"""What a forced promotion may have lost, and `invoke geo.reconcile --node OLD [--yes]`.

A forced promotion does not wait: the old primary may hold tags its successor never
received. Both questions here are the same comparison, made with the verification engine
of `geo.verify`: the tags (and digests) one registry has that the other lacks. Before the
promotion it is the loss report (what the old primary had that the new one does not);
after it, the old primary is fenced (read-only, its worker not syncing: `render.py`) and
holds those tags until `geo.reconcile --yes` lifts the fence, when its worker makes it a
plain copy of the primary again, dropping them. Nothing is deleted before that step.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import SecondaryWorkerSettings, load_primary, load_secondary
from gdk_geo.project import Project, roles
from gdk_geo.registry.errors import RegistryError
from gdk_geo.settings import Settings
from gdk_geo.settings.values import duration_seconds


@dataclass(frozen=True)
class Held:
    """One tag a node has that the primary lacks, or has at another digest."""

    repository: str
    tag: str
    digest: str
    primary_digest: str | None = None  # None: the primary has no such tag
    why: str = ""  # how it was found, when not by comparing the registries

    def line(self) -> str:
        where = f"the primary has {self.primary_digest}" if self.primary_digest else "absent"
        return (
            f"{self.repository}:{self.tag} {self.digest} ({self.why or where + ' on the primary'})"
        )


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


def unread_events(project: Project, cfg: Settings, old: str, new: str) -> list[Held] | None:
    """The pushes in `old`'s event log after the last event `new` read (both SQLite files
    are on disk even when the old primary's service is dead); None when unreadable."""
    from gdk_geo.primary.eventlog import EventLog
    from gdk_geo.secondary.tracking import TrackingDB

    log_file = project.node(cfg, old).event_log
    tracking_file = project.node(cfg, new).tracking_db
    if not log_file.exists() or not tracking_file.exists():
        return None
    try:
        tracking = TrackingDB(tracking_file)
        cursor, cursor_log = tracking.cursor(), tracking.cursor_log()
        tracking.close()
        log = EventLog(log_file)
        events, log_id = log.after(cursor, 10_000), log.identity
        log.close()
    except (GdkGeoError, OSError):
        return None
    if cursor_log is not None and cursor_log != log_id:
        return None  # `new` last read another log: its cursor says nothing of this one
    why = f"pushed to {old} after the last event {new} read"
    return [
        Held(e.repository, e.tag or "", e.digest or "", why=why)
        for e in events
        if e.action == "updated" and e.tag
    ]


def loss_report(project: Project, cfg: Settings, old: str, new: str) -> list[Held] | None:
    """What promoting `new` without waiting may lose: the tags `old`'s registry has and
    `new`'s lacks, or, when that registry is down, the pushes in `old`'s event log that
    `new` never read; None when neither can be read."""
    try:
        return held(project, cfg, old, new)
    except (RegistryError, GdkGeoError, OSError):
        return unread_events(project, cfg, old, new)


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
