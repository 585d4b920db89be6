"""`invoke geo.promote --node NAME`: a planned failover, in steps that converge when re-run.

The steps, as GitLab's planned failover runs them: (1) the primary registry goes read-only
(Distribution's `storage.maintenance.readonly`), so nothing new can be pushed to it;
(2) we wait until NAME has read the last event, has nothing pending, started or failed, and
verifies clean against the primary; (3) the roles switch in `roles.json` (one atomic
write: the commit point) and every node is converged to its new role by `lifecycle.setup`,
which recreates only what changed: NAME's registry gets the notification endpoint and its
service becomes the primary's (its own event log), every other node becomes a secondary of
NAME and keeps its registry storage, so a backfill only re-verifies what it has (a blob
already there is found by a HEAD, never copied again); (4) each secondary is verified
against the new primary.

Each step reads the record first, so a promote interrupted anywhere (Ctrl-C, a crash)
and run again picks up where it stopped: before the switch the primary is still the old
one (still read-only until the wait passes), after it the switch is done and only the
convergence runs again. On a timeout the primary is made read-write again and nothing
else changes. The unplanned failover, `geo.promote --force`, is `ops.unplanned`; it uses
the record and the convergence here.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import httpx

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import load_primary, load_secondary, node_token_of
from gdk_geo.ops import lifecycle
from gdk_geo.ops.loss import LossReport
from gdk_geo.project import Project, roles
from gdk_geo.runtime.image import messages
from gdk_geo.settings import Settings

Say = Callable[[str], None]
DEFAULT_TIMEOUT = 300.0  # seconds: `--timeout`
POLL_SECONDS = 0.5
BUSY_STATES = ("pending", "started", "failed")


@dataclass
class Promotion:
    """What a promotion did, for the summary the task prints (and for `make bench`)."""

    old_primary: str
    new_primary: str
    push_address: str
    changes: list[str] = field(default_factory=list)
    read_only_seconds: float = 0.0
    already: bool = False
    lost: LossReport | None = None  # --force: what the old primary holds that NAME lacks


def _quiet(_message: str) -> None:
    """Swallow setup's step messages: the promotion prints its own."""


def converge(project: Project) -> None:
    """Bring every node to the role the record gives it (restarting only what changed)."""
    lifecycle.setup(project, _quiet, progress=messages(_quiet))


def _status_of(url: str, node_token: str) -> dict | None:
    """The target worker's replication status, or None while it does not answer; the node
    token opens it on a worker beyond loopback."""
    headers = {"Authorization": f"Bearer {node_token}"} if node_token else {}
    try:
        response = httpx.get(f"{url}/api/v4/geo/replication/status", headers=headers, timeout=2.0)
        response.raise_for_status()
        return response.json()
    except (httpx.HTTPError, ValueError):
        return None


def _behind(status: dict | None) -> str | None:
    """Why the target has not caught up yet, or None when its own counters say it has."""
    if status is None:
        return "its Geo worker does not answer"
    counts = status.get("counts") or {}
    busy = {state: counts.get(state, 0) for state in BUSY_STATES if counts.get(state, 0)}
    lag = status.get("lag")
    if lag is None:
        return "it has not read the primary's event log yet"
    if lag or busy:
        detail = ", ".join(f"{n} {state}" for state, n in busy.items())
        return f"{lag} events behind" + (f", {detail}" if detail else "")
    return None


def differences(project: Project, cfg: Settings, secondary: str, primary: str) -> list[str]:
    """The repositories that differ between `secondary` and `primary`, by their registries."""
    from gdk_geo.secondary.verify import verify_registries

    settings = load_secondary(project.node(cfg, secondary).gitlab_yml)
    primary_url = load_primary(project.node(cfg, primary).gitlab_yml).registry_api_url
    diffs = asyncio.run(verify_registries(settings, primary_url))
    return [d.repository for d in diffs if not d.clean]


def wait_caught_up(project: Project, cfg: Settings, target: str, timeout: float, say: Say) -> None:
    """Wait until `target` has read every event, has nothing to do, and verifies clean
    against the primary; say what it still lacks whenever that changes."""
    deadline = time.monotonic() + timeout
    url, last = cfg.node(target).service_url, None
    token = node_token_of(project.node(cfg, target).gitlab_yml)
    while True:
        why = _behind(_status_of(url, token))
        if why is None:
            try:
                differ = differences(project, cfg, target, cfg.primary_name)
            except GdkGeoError as exc:
                differ = [exc.what]
            why = f"{len(differ)} repositories differ ({', '.join(differ[:3])})" if differ else None
        if why is None:
            say(f"  {target} has caught up: every event read, verify clean")
            return
        if why != last:
            say(f"  waiting for {target}: {why}")
            last = why
        if time.monotonic() >= deadline:
            raise TimeoutError(why)
        time.sleep(POLL_SECONDS)


def settled(
    project: Project, cfg: Settings, node: str, timeout: float, say: Say, *, done: str
) -> None:
    """`wait_caught_up` once a switch is made: a node that does not catch up is one line
    and its fix (what is `done` stays done), never a traceback."""
    try:
        wait_caught_up(project, cfg, node, timeout, say)
    except TimeoutError as exc:
        raise GdkGeoError(
            f"{node} did not verify clean against {cfg.primary_name} within {timeout:.0f}s "
            f"({exc}); {done}",
            fix=f"`invoke geo.status` shows what {node} lacks; `invoke geo.sync --all --node "
            f"{node}` syncs it now; `invoke geo.verify --node {node}` checks it",
        ) from None


def target_or_error(cfg: Settings, target: str) -> None:
    if target not in cfg.node_names:
        raise GdkGeoError(
            f"there is no node {target!r}; the nodes are {', '.join(cfg.node_names)}",
            fix="`invoke geo.status` lists the nodes; pass one of them to --node",
        )


def switch(
    data_dir: Path, recorded: roles.Roles, target: str, *, fence: bool = False
) -> roles.Roles:
    """The record after the switch: `target` primary, the old primary remembered (and
    fenced, after a forced promotion)."""
    fenced = [n for n in recorded.fenced if n != target]
    if fence and recorded.primary not in fenced:
        fenced.append(recorded.primary)
    switched = roles.Roles(
        primary=target,
        generation=recorded.generation + 1,
        fenced=tuple(fenced),
        previous=recorded.primary,
        history=[*recorded.history, recorded.primary],
    )
    roles.write(data_dir, switched)
    return switched


def _changes(cfg: Settings, old: str, target: str) -> list[str]:
    lines = [f"{target}: secondary → primary (its registry sends events; pushes go here)"]
    lines.append(f"{old}: primary → secondary of {target} (read-write again, keeps its data)")
    lines += [
        f"{node.name}: now replicates from {target} (keeps its data)"
        for node in cfg.secondaries
        if node.name not in (old, target)
    ]
    return lines


def promote(
    project: Project, target: str, *, timeout: float = DEFAULT_TIMEOUT, say: Say = print
) -> Promotion:
    """Promote `target` in a planned failover (see the module docstring for the steps)."""
    cfg = project.load()
    target_or_error(cfg, target)
    data_dir = project.data_dir(cfg)
    recorded = roles.current(cfg, data_dir)
    if recorded.primary == target:  # done already, or interrupted after the switch
        say(f"{target} is primary; converging every node to its role")
        converge(project)
        done = project.load()
        return Promotion(recorded.previous, target, done.primary.registry_address, already=True)
    if recorded.promoting and recorded.promoting != target:
        raise GdkGeoError(
            f"a promotion of {recorded.promoting} was interrupted",
            fix=f"`invoke geo.promote --node {recorded.promoting}` finishes it",
        )
    old = recorded.primary
    say(f"1/4 {old}: registry read-only (pushes are refused until the switch)")
    started = time.monotonic()
    roles.write(data_dir, replace(recorded, promoting=target))
    lifecycle.restart(project, old)  # only the primary: its registry renders read-only
    say(f"2/4 waiting until {target} has every event and verifies clean (--timeout {timeout:.0f}s)")
    try:
        wait_caught_up(project, project.load(), target, timeout, say)
    except TimeoutError as exc:
        roles.write(data_dir, replace(recorded, promoting=""))
        lifecycle.restart(project, old)
        raise GdkGeoError(
            f"{target} did not catch up within {timeout:.0f}s ({exc}); {old} is primary and "
            "read-write again, nothing else changed",
            fix=f"`invoke geo.status` shows what {target} lacks; `invoke geo.sync --all` "
            f"repairs it; then `invoke geo.promote --node {target}` again (or a longer "
            "--timeout)",
        ) from None
    say(f"3/4 switching roles: {target} is primary")
    switch(data_dir, replace(recorded, promoting=""), target)
    converge(project)
    read_only = time.monotonic() - started
    done = project.load()
    say("4/4 verifying every secondary against the new primary")
    fenced = roles.current(done, data_dir).fenced
    for node in done.secondaries:
        if node.name not in fenced:  # a fenced node does not sync until `geo.reconcile`
            settled(
                project,
                done,
                node.name,
                timeout,
                say,
                done=f"the promotion is done: {done.primary_name} is primary",
            )
    return Promotion(
        old, target, done.primary.registry_address, _changes(done, old, target), read_only
    )
