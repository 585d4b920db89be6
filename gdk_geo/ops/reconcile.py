"""`invoke geo.reconcile --node OLD [--yes]`: what a fenced old primary holds, and dropping it.

A forced promotion leaves the old primary fenced (read-only, its worker not syncing:
`render`), holding the tags its successor lacks. `held` finds them with the verification
engine of `geo.verify`: the tags (and digests) one registry has that the other lacks.
Without `--yes` reconcile only lists them and changes nothing, whatever it finds; with
`--yes` it lifts the fence and `rejoin` makes the node a plain copy of the primary again:
its worker restarts read-write and is asked for a sync pass over every repository at once
(the worker API's resync `{"all": true}`), which drops those tags, instead of leaving them
to its next scheduled verification, minutes away. Nothing is deleted before that step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import SecondaryWorkerSettings, load_primary, load_secondary
from gdk_geo.ops.loss import Held
from gdk_geo.ops.promote import converge, settled
from gdk_geo.project import Project, roles
from gdk_geo.registry.errors import RegistryError
from gdk_geo.settings import Settings
from gdk_geo.settings.values import duration_seconds

Say = Callable[[str], None]
REJOIN_TIMEOUT = 120.0  # seconds: the sync pass ran already; this is only its settling


def _settings(project: Project, cfg: Settings, node: str) -> SecondaryWorkerSettings:
    """Read settings for comparing `node`'s registry, whatever role it renders now."""
    paths = project.node(cfg, node)
    try:
        return load_secondary(paths.gitlab_yml)
    except GdkGeoError:  # a primary's gitlab.yml has no worker settings: make them
        replication = cfg.replication(node)  # the declared settings, defaults included
        return SecondaryWorkerSettings(
            node_root=paths.root,
            listen_address=cfg.node(node).listen_address,
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
    """The tags `node`'s registry has that `primary`'s lacks or has at another digest.

    Raises `RegistryError` (a `SideUnreadable` naming the registry) when either cannot be
    read: "could not ask" must never read as "holds nothing".
    """
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


def _held_or_error(project: Project, cfg: Settings, node: str) -> list[Held]:
    """`held` against the primary, or one line and its fix when a registry cannot be read."""
    try:
        return held(project, cfg, node, cfg.primary_name)
    except RegistryError as exc:
        raise GdkGeoError(
            f"cannot compare {node} with the primary {cfg.primary_name}: {exc}",
            fix=f"`invoke geo.setup` starts what is down ({node} comes back fenced); "
            f"`invoke geo.logs --node {node}` shows why it stopped; then run this again",
        ) from None


def reconcile(project: Project, node: str, *, yes: bool = False) -> tuple[list[Held], bool]:
    """List what fenced `node` holds that the primary lacks; with `yes`, and only then, lift
    the fence, so it becomes a read-write secondary whose worker drops those tags. Returns
    the held tags and whether the fence was lifted."""
    cfg = project.load()
    data_dir = project.data_dir(cfg)
    recorded = roles.current(cfg, data_dir)
    if node not in recorded.fenced:
        raise GdkGeoError(
            f"{node} is not fenced: it holds nothing the primary lacks by a forced promotion",
            fix="`invoke geo.verify` compares a secondary with the primary",
        )
    tags = _held_or_error(project, cfg, node)
    if not yes:
        return tags, False
    roles.write(data_dir, replace(recorded, fenced=tuple(n for n in recorded.fenced if n != node)))
    return tags, True


def resync_all(settings: SecondaryWorkerSettings, node: str) -> list[dict]:
    """Have `node`'s worker sync every repository either registry has, now, and wait for
    that pass: it drops the tags the primary lacks. The failed repositories' results."""
    from gdk_geo.ops import worker_client

    fix = (
        f"`invoke geo.status` shows whether {node}'s worker runs; `invoke geo.sync --all "
        f"--node {node}` runs the pass again"
    )
    try:
        events = list(worker_client.start_pass(settings, "resync", {"all": True}))
    except (worker_client.WorkerUnavailable, worker_client.WorkerStopped) as exc:
        why = f"{node}'s Geo worker did not run the sync pass: {exc}"
        raise GdkGeoError(why, fix=fix) from None
    except worker_client.PassRefused as exc:
        raise GdkGeoError(f"{node}'s Geo worker refused the sync pass: {exc}", fix=fix) from None
    done = events[-1] if events else {}
    if done.get("error"):
        raise GdkGeoError(f"{node}'s sync pass failed: {done['error']}", fix=done.get("fix") or fix)
    return [e for e in events if e.get("type") == "result" and not e.get("ok")]


def rejoin(project: Project, node: str, *, timeout: float = REJOIN_TIMEOUT, say: Say) -> None:
    """After `reconcile` lifted `node`'s fence: bring it up read-write as a secondary, have
    its worker sync everything now, and wait until it verifies clean against the primary."""
    converge(project)
    cfg = project.load()
    settings = load_secondary(project.node(cfg, node).gitlab_yml)
    say(f"  {node}: syncing every repository from {cfg.primary_name} now")
    failed = resync_all(settings, node)
    if failed:
        names = ", ".join(f"{r['repository']} ({r['reason']})" for r in failed[:3])
        raise GdkGeoError(
            f"{node} could not sync {len(failed)} repositories from {cfg.primary_name}: {names}",
            fix=f"`invoke geo.sync --failed --node {node}` tries them again; "
            f"`invoke geo.logs --node {node}` shows why they failed",
        )
    settled(
        project,
        cfg,
        node,
        timeout,
        say,
        done=f"its fence is lifted and it syncs from {cfg.primary_name}",
    )
