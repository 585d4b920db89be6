"""The replication tasks: `geo.sync` and `geo.verify` (one pass now, by the worker when it
answers), and failover: `geo.promote` and `geo.reconcile`.

The engine is imported inside the tasks, and only when the worker does not run the pass
itself: `geo.sync` through the worker loads its client and the settings reader alone.
"""

from __future__ import annotations

from invoke import task
from invoke.exceptions import Exit

from gdk_geo.cli.console import err, out, user_errors
from gdk_geo.cli.tasks_support import check_node, project_of, say
from gdk_geo.errors import GdkGeoError, clipped


def _secondary_settings(c, node: str | None):
    """Secondary `node`'s (the first secondary's when None) worker settings, read from its
    rendered gitlab.yml as the worker reads them, so a pass run here uses what it would."""
    from gdk_geo.cli import passes as passes_cli

    project = project_of(c)
    return passes_cli.secondary_settings(project, project.load(), node)


@task(
    iterable=["repo"],
    help={
        "repo": "A repository to sync (repeatable), e.g. group/app.",
        "all": "Every repository in the primary's catalog.",
        "failed": "Every repository whose last sync failed.",
        "node": "The secondary to sync (default: the first secondary).",
    },
)
@user_errors
def sync(c, repo=None, all_=False, failed=False, node=None):
    """One blocking sync pass now, run by the worker when it runs; exits 1 if any failed,
    3 when the worker stops answering mid-pass (the pass may still be running there)."""
    from gdk_geo.cli import passes as passes_cli
    from gdk_geo.settings import config as gdk_config
    from gdk_geo.settings.topology import same_registry

    check_node(c, node)
    settings = _secondary_settings(c, node)
    if not settings.replication_enabled:
        raise GdkGeoError(
            "replication is disabled for the secondary: nothing to sync",
            fix="set geo.secondary.registry_replication.enabled: true in gdk.yml "
            "(`invoke geo.config.set geo.secondary.registry_replication.enabled true`), "
            "then `invoke geo.restart`",
        )
    if same_registry(settings.primary_api_url, settings.registry_api_url):
        raise GdkGeoError(
            f"the secondary's primary_api_url ({settings.primary_api_url}) is its own "
            "registry: a sync would copy the secondary onto itself",
            fix=f"`invoke geo.config.set {gdk_config.API_URL_KEY} ''` (derives the primary "
            "registry's URL), then `invoke geo.restart`",
        )
    selection = {"repositories": list(repo or []), "all": all_, "failed": failed}
    elsewhere = passes_cli.engine_elsewhere(project_of(c).load(), settings.node_name)
    results = passes_cli.through_worker(
        settings, "resync", selection, "synced", elsewhere=elsewhere
    )
    if results is None:
        results = passes_cli.sync_in_process(settings, selection)
    failures = [result for result in results if not result["ok"]]
    for result in results:
        mark = "[green]✓[/]" if result["ok"] else "[red]✗[/]"
        detail = result["reason"] or (
            f"{result['pushed']} pushed, {result['unchanged']} unchanged, "
            f"{result['deleted']} deleted; blobs {result['blobs_copied']} copied, "
            f"{result['blobs_mounted']} mounted"
        )
        out.print(f"{mark} {result['repository']}: {detail}")
    out.print(f"{len(results) - len(failures)} synced, {len(failures)} failed")
    if failures:
        raise Exit(code=1)


@task(
    help={
        "json": "Print JSON for scripts instead of text.",
        "node": "Verify only this secondary (default: every secondary).",
    }
)
@user_errors
def verify(c, json_=False, node=None):
    """Compare every secondary's tag→digest maps with the primary's, per node; exit 1 when
    any node differs, 2 when a registry cannot be read, 3 when a worker stops answering
    mid-pass. Each node's worker runs it when it runs and reads the primary."""
    from gdk_geo.cli import verify as verify_cli

    check_node(c, node)
    code = verify_cli.verify(project_of(c), node, as_json=json_)
    if code:
        raise Exit(code=code)


def _seconds(raw: str) -> float:
    """`--timeout` in seconds ("300", "90s", "5m"); anything else is a usage error."""
    from gdk_geo.settings.values import duration, duration_seconds

    text = raw if not raw.replace(".", "", 1).isdigit() else f"{raw}s"
    if duration(text):
        shown = clipped(raw, repr)
        err.print(f"--timeout must be a duration such as 300, 90s or 5m, not {shown}", markup=False)
        raise Exit(code=2)
    return duration_seconds(text)


@task(
    help={
        "node": "The node to promote to primary.",
        "force": "Do not wait for the primary (it is dead); fence it when it comes back.",
        "timeout": "How long to wait for it to catch up (default 5m); then nothing changes.",
    }
)
@user_errors
def promote(c, node, force=False, timeout="5m"):
    """Planned failover: primary read-only, wait for NODE, switch roles, verify every node.
    With --force (the primary is dead): promote now, report what may be lost, fence it."""
    from gdk_geo.ops import promote as promotion
    from gdk_geo.ops import unplanned

    check_node(c, node)
    seconds = _seconds(timeout)
    if force:  # its loss report is said as soon as it is read, before the restarts
        done = unplanned.force_promote(project_of(c), node, say=say)
    else:
        done = promotion.promote(project_of(c), node, timeout=seconds, say=say)
    if done.already:
        out.print(f"{node} is primary; every node runs its role")
    for line in done.changes:
        out.print(f"  {line}", markup=False)
    if done.read_only_seconds:
        out.print(f"read-only for {done.read_only_seconds:.1f}s")
    out.print(f"push to: docker push {done.push_address}/group/app:v1", markup=False)


@task(
    help={
        "node": "The fenced old primary.",
        "yes": "Drop the tags it holds that the primary lacks, and let it sync again.",
    }
)
@user_errors
def reconcile(c, node, yes=False):
    """List what a fenced node (a forced promotion's old primary) holds that the primary
    lacks, changing nothing; with --yes drop it: the node becomes a read-write secondary
    again, synced at once."""
    from gdk_geo.ops import reconcile as reconciliation

    check_node(c, node)
    project = project_of(c)
    tags, lifted = reconciliation.reconcile(project, node, yes=yes)
    primary = project.load().primary_name
    for held in tags:
        out.print(f"  {'dropping' if lifted else 'held'}: {held.line(primary)}", markup=False)
    if not lifted:
        _listed_only(node, primary, len(tags))
        return
    reconciliation.rejoin(project, node, say=say)
    out.print(
        f"{node} is a read-write secondary of {primary} again; "
        f"{len(tags)} tags it held are dropped",
        markup=False,
    )


def _listed_only(node: str, primary: str, count: int) -> None:
    """What `geo.reconcile` without --yes says: it changed nothing; exit 1 while the node
    holds tags the primary lacks, 0 when it holds none."""
    if not count:
        out.print(
            f"{node} holds no tag that {primary} lacks; it stays fenced until "
            f"`invoke geo.reconcile --node {node} --yes`",
            markup=False,
        )
        return
    out.print(
        f"{count} tags on {node} that {primary} lacks; nothing changed: "
        f"`invoke geo.reconcile --node {node} --yes` drops them and lifts the fence",
        markup=False,
    )
    raise Exit(code=1)
