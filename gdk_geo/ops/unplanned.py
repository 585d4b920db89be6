"""`invoke geo.promote --node NAME --force`: an unplanned failover, and its loss report.

The old primary may still take pushes while the promotion runs (in a drill it usually
does), so the report of what may be lost is read only after it has stopped taking them;
a snapshot taken before would miss every push acknowledged in between. The steps:

1. Fence. The record switches (NAME primary, the old one fenced: the commit point) and
   every node's files are rendered for it. NAME's worker stops, so what NAME holds no longer
   changes; the old primary's Geo service stops (no event, no token for a push), and its
   registry, when it runs, is recreated read-only (`storage.maintenance.readonly`) and
   waited for. A registry that is not running takes no push; one that does not come back
   read-only is stopped.
2. Report, from what the old primary holds now: every tag it has that NAME lacks or has at
   another digest. Every push it acknowledged is on NAME or named. When its registry cannot
   be read, the report says it is incomplete, lists the pushes in its event log that NAME
   never read, and says how to complete it (`geo.reconcile --node OLD` once it is back).
3. Every other node restarts in its new role: NAME primary, the other secondaries
   replicating from it. They converge to NAME and drop what it lacks, so after the
   promotion each reported tag exists only on the fenced old primary, which keeps it
   (read-only, its worker not syncing) until `geo.reconcile --node OLD --yes`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace

from gdk_geo.errors import GdkGeoError
from gdk_geo.ops import lifecycle
from gdk_geo.ops.loss import LossReport, unread_events
from gdk_geo.ops.promote import Promotion, promote, switch, target_or_error
from gdk_geo.ops.reconcile import held
from gdk_geo.project import Project, roles
from gdk_geo.registry.errors import RegistryError
from gdk_geo.runtime import containers
from gdk_geo.runtime.placement import Placement
from gdk_geo.settings import Settings

Say = Callable[[str], None]


def _stop_container(place: Placement, node: str) -> None:
    """Stop `node`'s registry container when it runs or is being restarted by its restart
    policy (no engine: nothing of it runs); a stopped one stays down until `geo.setup`."""
    with contextlib.suppress(GdkGeoError):
        container = place.registry_container(node)
        if container is not None and container.status in ("running", "restarting"):
            container.stop(timeout=10)


def _registry_running(place: Placement, node: str) -> str:
    """Why `node`'s registry container is not running ("" when it is)."""
    name = containers.container_name(place.cfg, node)
    try:
        container = place.registry_container(node)
    except GdkGeoError as exc:
        return exc.what
    if container is None:
        return f"its registry container {name} does not exist"
    if container.status != "running":
        return f"its registry container {name} is {container.status}"
    return ""


def fence(project: Project, cfg: Settings, old: str) -> str:
    """Make the old primary stop taking pushes, its files rendered fenced already: stop its
    Geo service, recreate its registry read-only when it runs. Returns why its registry
    cannot be read now ("" when it runs read-only and answers)."""
    place = Placement(project, cfg)
    with contextlib.suppress(GdkGeoError):  # an engine that does not answer runs nothing
        place.stop_service(old)
    why = _registry_running(place, old)
    if why:
        _stop_container(place, old)  # one that is restarting must not come back
        return why
    try:
        lifecycle.restart_registry(project, old)
    except GdkGeoError as exc:
        _stop_container(place, old)  # not read-only for sure: it takes nothing
        return f"it did not come back read-only: {exc.what.splitlines()[0]}"
    return ""


def _converging(project: Project, cfg: Settings, old: str) -> tuple[str, ...]:
    """The secondaries that replicate from the new primary now: every one but the nodes
    fenced (`old`, and any a forced promotion fenced before, which sync from nobody)."""
    fenced = roles.current(cfg, project.data_dir(cfg)).fenced
    return tuple(n.name for n in cfg.secondaries if n.name != old and n.name not in fenced)


def loss_report(project: Project, cfg: Settings, old: str, new: str, unreadable: str) -> LossReport:
    """What `old` holds that `new` lacks, read from `old`'s registry when `unreadable` is
    empty; else (or when that read fails) from `old`'s event log, and said to be partial."""
    others = _converging(project, cfg, old)
    if not unreadable:
        try:
            return LossReport(old, new, tuple(held(project, cfg, old, new)), others=others)
        except (RegistryError, GdkGeoError, OSError) as exc:
            unreadable = " ".join(str(exc).split()) or type(exc).__name__
    events = unread_events(project, cfg, old, new)
    return LossReport(
        old,
        new,
        tuple(events or ()),
        unreadable=unreadable,
        from_event_log=events is not None,
        others=others,
    )


def _restart_others(project: Project, cfg: Settings, old: str, fenced_up: bool) -> None:
    """Every node but `old` in its new role; `old`'s service too when its registry runs
    (read-only, as a secondary that does not sync: the node whole, and fenced)."""
    for node in cfg.node_names:
        if node != old:
            lifecycle.restart(project, node)
    if fenced_up:
        place = Placement(project, cfg)
        place.converge_service(old, changed=True)
        lifecycle.wait_healthy_service(place, old)


def force_promote(project: Project, target: str, *, say: Say = print) -> Promotion:
    """Unplanned failover (see the module docstring): fence the old primary, report what it
    holds that `target` lacks, restart the other nodes in their new roles."""
    cfg = project.load()
    target_or_error(cfg, target)
    data_dir = project.data_dir(cfg)
    recorded = roles.current(cfg, data_dir)
    if recorded.primary == target:
        return promote(project, target, say=say)  # converges: nothing to force
    old = recorded.primary
    say(f"1/3 fencing {old}: it takes no more pushes; {target} stops syncing from it")
    switch(data_dir, replace(recorded, promoting=""), target, fence=True)
    done = project.load()
    lifecycle.reconfigure(project)
    Placement(project, done).stop_service(target)
    unreadable = fence(project, done, old)
    say(f"2/3 what {old} holds that {target} lacks (what the promotion may lose):")
    lost = loss_report(project, done, old, target, unreadable)
    for line in lost.lines():
        say(f"  {line}")
    say("3/3 restarting every other node in its new role")
    _restart_others(project, done, old, fenced_up=not unreadable)
    changes = [
        f"{target}: secondary → primary (pushes go here)",
        f"{old}: fenced: read-only and not syncing, also when it comes back, until "
        f"`invoke geo.reconcile --node {old}`",
    ]
    changes += [f"{n}: now replicates from {target} (keeps its data)" for n in lost.others]
    return Promotion(old, target, done.primary.registry_address, changes, lost=lost)
