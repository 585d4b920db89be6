"""The `geo` invoke collection. Each task parses flags, calls one module, and prints.

The work itself lives in `lifecycle.py`, `status.py`, `config.py` and friends so it can be
tested without a subprocess; a task never holds logic worth testing on its own.

Modules beyond the console are imported inside the tasks that use them: every `invoke`
call imports this file, and importing Docker's SDK, cryptography, Jinja and the replication
engine up front would be most of a quick task's time (bench/RESULTS.md has the figures).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from invoke import Collection, task
from invoke.exceptions import Exit
from rich.text import Text

from gdk_geo import record
from gdk_geo.console import diff, err, out, user_errors
from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.project import EXAMPLE, REPO_ROOT, Project
from gdk_geo.settings import NODE_NAMES

if TYPE_CHECKING:
    from gdk_geo import checks, lifecycle
    from gdk_geo import logs as geo_logs
    from gdk_geo.image import Progress as ImageProgress


def _project(c) -> Project:
    root = c.config.get("gdk_geo", {}).get("root") if hasattr(c, "config") else None
    return Project.locate(Path(root) if root else None)


def _check_node(c, node: str | None) -> None:
    """A usage error (exit 2) unless `node` names a node of gdk.yml (or of the record)."""
    if node is None:
        return
    project = _project(c)
    try:
        names = list(project.load().node_names)
    except GdkGeoError:  # a broken gdk.yml: the nodes the project last started
        names = [n for r in record.read(project) for n in r.node_names] or list(NODE_NAMES)
    if node not in names:
        *rest, last = list(dict.fromkeys(names))
        err.print(f"--node must be {', '.join(rest)} or {last}, not {node!r}")
        raise Exit(code=2)


def _say(message: str) -> None:
    out.print(message, markup=False, highlight=False)


def _progress(last_column: str):
    """A transient rich bar (spinner, description, bar, `last_column`); imported only here,
    for a terminal, so scripts and CI don't pay for it."""
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
    return Progress(*columns, TextColumn(last_column), console=out, transient=True)


@contextmanager
def _long_steps() -> Iterator[ImageProgress]:
    """Report long steps: a live bar (bytes for a pull) on a terminal, plain lines elsewhere.

    Each new step is also printed once, so what happened stays on screen after the bar.
    """
    from gdk_geo.image import Step, messages

    if not out.is_terminal:
        yield messages(_say)
        return
    with _progress("{task.fields[size]}") as progress:
        bar = progress.add_task("", total=None, size="")
        say_once = messages(lambda message: progress.console.print(message, markup=False))

        def report(step: Step) -> None:
            say_once(step)
            size = f"{step.done / 1e6:.1f}/{step.total / 1e6:.1f} MB" if step.total else ""
            progress.update(
                bar, description=step.message, completed=step.done or 0, total=step.total, size=size
            )

        yield report


def _print_reconfigured(done: lifecycle.Reconfigured) -> None:
    if done.created_gdk_yml:
        out.print("created gdk.yml from gdk.example.yml (it is yours to edit)")
    cert = done.certificates
    out.print(
        f"certificates: {cert.action}, valid until {cert.not_after:%Y-%m-%d}"
        + (", copied to the secondary" if cert.copied else "")
    )
    for change in done.changes:
        if change.status == "unchanged":
            continue
        note = f" (backup: {change.backup.name})" if change.backup else ""
        out.print(f"{change.status}: {change.path}{note}")
        if change.status == "updated" and change.diff:
            diff(change.diff)
    if not done.changed_nodes():
        out.print("rendered files: unchanged")


@task(help={"force": "Overwrite rendered files edited by hand (each is backed up first)."})
@user_errors
def reconfigure(c, force=False):
    """Render both nodes' config.yml and gitlab.yml, secrets and certificates (no Docker)."""
    from gdk_geo import lifecycle

    _print_reconfigured(lifecycle.reconfigure(_project(c), force=force))


@task(help={"pull": "Pull registry.image even when present, or when an earlier pull failed."})
@user_errors
def image(c, pull=False):
    """Make sure the registry image exists: present, pulled, or built offline."""
    from gdk_geo import nodes
    from gdk_geo.image import ensure_registry_image

    project = _project(c)
    cfg = project.load()
    with _long_steps() as progress:
        result = ensure_registry_image(
            nodes.engine(), cfg.registry.image, Path(cfg.registry.binary), progress, pull=pull
        )
    out.print(f"registry image: {result.name} ({result.how})")


def _labelled(node) -> str:
    """A node's name, with its role when the name does not say it (`dc2 (primary)`)."""
    role = "primary" if node.is_primary else "secondary"
    return node.name if node.name == role else f"{node.name} ({role})"


def _summary(project: Project, result: lifecycle.SetupResult) -> None:

    cfg = result.reconfigured.cfg
    if result.image_how == "built offline":
        out.print(
            f"[yellow]note[/]: {cfg.registry.image} is not available here, so both nodes "
            f"run {result.image}, built offline from {cfg.registry.binary} "
            "(`invoke geo.image --pull` tries the pull again)"
        )
    labels = {node.name: _labelled(node) for node in cfg.nodes}
    width = max(9, *(len(label) for label in labels.values()))
    for node in cfg.nodes:
        out.print(
            f"{labels[node.name]:{width}}  registry {node.registry_url:28} "
            f"({result.containers[node.name]})  Geo service {node.service_url} "
            f"({result.services[node.name]})"
        )
    out.print("\nTry it:")
    out.print(f"  docker push {cfg.primary.registry_address}/group/app:v1")
    for node in cfg.secondaries:
        out.print(f"  docker pull {node.registry_address}/group/app:v1")
    out.print(f"  status page: {cfg.secondaries[0].service_url}/admin/geo")
    from gdk_geo.login import login_hint

    for line in login_hint(project, cfg):
        out.print(line)


@task(help={"force": "Overwrite rendered files edited by hand (each is backed up first)."})
@user_errors
def setup(c, force=False):
    """Render, get the image, start both registries and Geo services, wait until healthy."""
    from gdk_geo import lifecycle

    project = _project(c)
    with _long_steps() as progress:
        result = lifecycle.setup(
            project, _say, force=force, progress=progress, on_reconfigured=_print_reconfigured
        )
    _summary(project, result)


@task
@user_errors
def login(c):
    """Log the Docker CLI in to both registries (the password goes through stdin)."""
    from gdk_geo.login import docker_login

    for done in docker_login(_project(c)):
        out.print(f"logged in to {done.registry} ({done.node}) as {done.username}")


@task(
    help={
        "node": "primary or secondary (default: both)",
        "force": "Overwrite rendered files edited by hand (each is backed up first).",
    }
)
@user_errors
def restart(c, node=None, force=False):
    """Re-render what changed, restart containers and services, wait until healthy."""
    from gdk_geo import lifecycle

    _check_node(c, node)
    with out.status(f"restarting {node or 'both nodes'} and waiting until healthy"):
        done = lifecycle.restart(_project(c), node, force=force)
    _print_reconfigured(done)
    out.print(f"restarted {node or 'both nodes'}: healthy")


@task
@user_errors
def stop(c):
    """Stop both Geo services and registry containers; all data stays."""
    from gdk_geo import lifecycle

    stopped = lifecycle.stop(_project(c))
    out.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


@task(
    help={
        "yes": "Do not ask for confirmation.",
        "data": "Also delete registry storage and the Geo databases.",
    }
)
@user_errors
def destroy(c, yes=False, data=False):
    """Stop everything and remove the containers (and with --data, the registry data)."""
    from gdk_geo import lifecycle

    if not yes:
        what = "containers and ALL registry data" if data else "containers (data stays)"
        answer = input(f"Remove the gdk-geo {what}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            out.print("nothing removed")
            return
    removed = lifecycle.destroy(_project(c), data=data)
    out.print("removed: " + (", ".join(removed) if removed else "nothing"))


@task(help={"json": "Print JSON for scripts instead of a table."})
@user_errors
def status(c, json_=False):
    """Per node: container, image, ports, health, uptime, certificate; services; replication."""
    from gdk_geo import status as node_status

    report = node_status.collect(_project(c))
    if json_:
        print(json.dumps(report, indent=2, default=str))
    else:
        node_status.print_table(report, out)


# Replication: one sync pass, and verification of both registries.


def _primary_registry_url(c) -> str:
    """The primary registry itself, as its own node's gitlab.yml names it: what the
    secondary is compared with, whatever its `primary_api_url` says."""
    from gdk_geo import node_settings

    project = _project(c)
    cfg = project.load()
    primary = project.node(cfg, cfg.primary_name)
    return node_settings.load_primary(primary.gitlab_yml).registry_api_url


def _secondary_settings(c):
    from gdk_geo import node_settings

    project = _project(c)
    cfg = project.load()
    return node_settings.load_secondary(project.node(cfg, cfg.secondaries[0].name).gitlab_yml)


@task(
    iterable=["repo"],
    help={
        "repo": "A repository to sync (repeatable), e.g. group/app.",
        "all": "Every repository in the primary's catalog.",
        "failed": "Every repository whose last sync failed.",
    },
)
@user_errors
def sync(c, repo=None, all_=False, failed=False):
    """One blocking sync pass now, run by the worker when it runs; exits 1 if any failed."""
    from gdk_geo import config as gdk_config
    from gdk_geo import passes_cli
    from gdk_geo.topology import same_registry

    settings = _secondary_settings(c)
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
    results = passes_cli.through_worker(settings, "resync", selection, "synced")
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


@task(help={"json": "Print JSON for scripts instead of text."})
@user_errors
def verify(c, json_=False):
    """Compare every repository's tag→digest map on both registries; exit 1 on any difference,
    2 when a registry cannot be read. The worker runs it when it runs and reads the primary."""
    from gdk_geo import passes_cli
    from gdk_geo.topology import same_registry

    settings = _secondary_settings(c)
    primary = _primary_registry_url(c)
    diffs = None
    if same_registry(primary, settings.primary_api_url):
        diffs = passes_cli.through_worker(settings, "reverify", {}, "verified")
    else:  # the worker's primary is not the primary registry: it cannot vouch for it
        err.print(
            f"note: the Geo worker reads {settings.primary_api_url}, not the primary registry "
            f"{primary}: verifying in this process",
            markup=False,
            soft_wrap=True,
        )
    if diffs is None:
        diffs, queued = passes_cli.verify_in_process(settings, primary)
    else:
        queued = [d["repository"] for d in diffs if not d["clean"]]
    different = [passes_cli.difference(d) for d in diffs if not d["clean"]]
    if json_:
        print(
            json.dumps(
                {
                    "repositories": len(diffs),
                    "clean": not different,
                    "differences": different,
                    "queued_for_sync": queued,
                },
                indent=2,
            )
        )
    else:
        for d in different:
            passes_cli.print_difference(d)
        out.print(f"{len(diffs)} repositories compared, {len(different)} differ")
        if queued:
            out.print(
                f"queued for sync: {', '.join(queued)}. The worker repairs them within 30 s "
                "while it runs; `invoke geo.sync --all` repairs them now",
                markup=False,
                soft_wrap=True,
            )
    if different:
        raise Exit(code=1)


# Operator experience: geo.check and geo.logs.

_CHECK_STYLES = {"passed": "green", "failed": "bold red", "skipped": "yellow"}


def _print_check(result: checks.Result) -> None:
    from gdk_geo import checks

    line = Text(checks.headline(result))
    line.stylize(_CHECK_STYLES[result.outcome.status], 0, 1)
    out.print(line, soft_wrap=True)
    for extra in checks.explanation(result):
        out.print(extra, markup=False, highlight=False, soft_wrap=True)


@task(name="check")
@user_errors
def check(c):
    """Diagnose both nodes like `gdk doctor`: one line per check, the exact fix for each ✗."""
    from gdk_geo import checks

    with out.status("checking"):
        results = checks.run_checks(_project(c), _print_check)
    counts = {status: 0 for status in checks.MARKS}
    for result in results:
        counts[result.outcome.status] += 1
    out.print(
        f"geo.check: {counts['passed']} ✓, {counts['failed']} ✗, {counts['skipped']} skipped",
        highlight=False,
    )
    if counts["failed"]:
        raise Exit(code=1)


def _tail_count(raw: str) -> int:
    """`--tail` as a count of lines; anything else is a usage error, like a wrong --node.

    The flag is read as text (an int default made invoke's own int() raise a traceback at
    `--tail abc`), and a negative count used to mean "everything"."""
    text = str(raw).strip()
    if not (text.isascii() and text.isdigit()):
        err.print(
            f"--tail must be a number of lines (0 or more; 0: all), not {raw!r}", markup=False
        )
        raise Exit(code=2)
    return int(text)


def _write_line(line: geo_logs.LogLine) -> None:
    sys.stdout.write(line.render() + "\n")
    sys.stdout.flush()


@task(
    help={
        "node": "primary or secondary (default: both)",
        "follow": "Keep printing new lines until Ctrl-C.",
        "tail": "Only the last N lines of each log (default 0: all).",
    }
)
@user_errors
def logs(c, node=None, follow=False, tail="0"):
    """The registry and Geo service logs of both nodes, interleaved by time, with prefixes."""
    from gdk_geo import logs as geo_logs
    from gdk_geo import nodes

    _check_node(c, node)
    count = _tail_count(tail)
    project = _project(c)
    try:
        client = nodes.engine()
    except GdkGeoError as exc:
        err.print(f"note: {exc.what}; showing the Geo service logs only", markup=False)
        client = None
    chosen = geo_logs.sources(project, node, client)
    try:
        for line in geo_logs.history(chosen, count):
            sys.stdout.write(line.render() + "\n")
        sys.stdout.flush()
        if follow:
            geo_logs.follow(chosen, _write_line, threading.Event())
    except KeyboardInterrupt:
        return  # Ctrl-C is how --follow ends: not an error
    except BrokenPipeError:
        # `invoke geo.logs | head`: the reader left; stop quietly, as `cat` would.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 (closed by the interpreter)


# geo.config.*


@task(name="get")
@user_errors
def config_get(c, key):
    """Print the effective value of a setting (defaults and derived values included)."""
    from gdk_geo import config_edit

    project = _project(c)
    print(config_edit.shown(key, config_edit.get(project.gdk_yml, key, project.with_roles)))


@task(name="set")
@user_errors
def config_set(c, key, value):
    """Set a setting in gdk.yml, keeping your comments and key order."""
    from gdk_geo import config_edit, lifecycle

    project = _project(c)
    lifecycle.ensure_gdk_yml(project)
    config_edit.set_value(project.gdk_yml, key, value, project.with_roles)
    value = config_edit.shown(key, config_edit.get(project.gdk_yml, key, project.with_roles))
    out.print(f"{key} = {value}  (run `invoke geo.restart`)", markup=False)


@task(name="list")
def config_list(c):
    """Every setting with its default and what it does."""
    from gdk_geo import settings_docs

    print(settings_docs.settings_table())


@task(name="example")
@user_errors
def config_example(c):
    """Regenerate gdk.example.yml and the README's settings and troubleshooting tables."""
    from gdk_geo import checks_docs, settings_docs

    atomic_write(EXAMPLE, settings_docs.example_yaml())
    readme = REPO_ROOT / "README.md"
    text = settings_docs.readme_with_table(readme.read_text())
    atomic_write(readme, checks_docs.readme_with_troubleshooting(text))
    out.print(f"wrote {EXAMPLE.name}, and the settings and troubleshooting tables in README.md")


def _seconds(raw: str) -> float:
    """`--timeout` in seconds ("300", "90s", "5m"); anything else is a usage error."""
    from gdk_geo.setting_checks import duration, duration_seconds

    text = raw if not raw.replace(".", "", 1).isdigit() else f"{raw}s"
    if duration(text):
        err.print(f"--timeout must be a duration such as 300, 90s or 5m, not {raw!r}")
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
    from gdk_geo import promote as promotion

    _check_node(c, node)
    seconds = _seconds(timeout)
    if force:
        done = promotion.force_promote(_project(c), node, say=_say)
    else:
        done = promotion.promote(_project(c), node, timeout=seconds, say=_say)
    if done.lost is None and force:
        out.print(f"{done.old_primary} cannot be read: what it had is unknown")
    for held in done.lost or []:
        out.print(f"  may be lost: {held.line()}", markup=False)
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
    lacks; with --yes drop it: the node becomes a read-write secondary again."""
    from gdk_geo import promote as promotion
    from gdk_geo import reconcile as reconciliation

    _check_node(c, node)
    project = _project(c)
    tags, lifted = reconciliation.reconcile(project, node, yes=yes)
    for held in tags:
        out.print(f"  {'dropping' if lifted else 'held'}: {held.line()}", markup=False)
    if not lifted:
        out.print(
            f"{len(tags)} tags on {node} that the primary lacks; "
            f"`invoke geo.reconcile --node {node} --yes` drops them",
            markup=False,
        )
        raise Exit(code=1)
    promotion.rejoin(project, node, say=_say)
    out.print(f"{node} is a read-write secondary of {project.load().primary_name} again")


config_ns = Collection("config", config_get, config_set, config_list, config_example)
ns = Collection(
    reconfigure,
    setup,
    restart,
    stop,
    destroy,
    status,
    image,
    sync,
    verify,
    check,
    logs,
    promote,
    reconcile,
    login,
)
ns.add_collection(config_ns)
