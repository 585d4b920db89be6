"""`geo.sync` and `geo.verify`: the pass run by the worker, or in this process, and printed.

The tasks hand their pass to the running worker (`gdk_geo.ops.worker_client`) and draw its
streamed progress; only when the worker cannot take it do they import the sync engine and
run the pass here, as before the worker had an API, saying so on stderr. Either way the
results come back as the same plain dicts (`gdk_geo.secondary.passes.result_json`, a
`RepositoryDiff` as a dict), so the output is the same whoever did the work.

A worker that stops answering once it has taken the pass (killed, or the connection
dropped) ends the task with one ✗ line, its fix, and exit code 3 (`WORKER_STOPPED`): the
pass may still be running there, so it is not run again here.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import TYPE_CHECKING, NoReturn

from rich.markup import escape

from gdk_geo.cli.console import TaskEnded, err, out
from gdk_geo.errors import GdkGeoError

if TYPE_CHECKING:
    from gdk_geo.node.settings import SecondaryWorkerSettings
    from gdk_geo.project import Project
    from gdk_geo.secondary.verify import RepositoryDiff
    from gdk_geo.settings import Settings

_IN_PROCESS = {"resync": "syncing", "reverify": "verifying"}
WORKER_STOPPED = 3  # the exit code when the worker stops answering mid-pass


def secondary_name(cfg: Settings, node: str | None) -> str:
    """The secondary a pass acts on: `node`, or the first secondary; the primary has no
    worker and nothing to sync into, so naming it is an error with the secondaries named."""
    names = [secondary.name for secondary in cfg.secondaries]
    if node is not None and node not in names:
        raise GdkGeoError(
            f"{node} is the primary: passes run on a secondary, against it",
            fix=f"pass a secondary to --node ({', '.join(names)})",
        )
    return node or names[0]


def secondary_settings(
    project: Project, cfg: Settings, node: str | None
) -> SecondaryWorkerSettings:
    """The rendered settings of the secondary `secondary_name` picks."""
    from gdk_geo.node.settings import load_secondary

    return load_secondary(project.node(cfg, secondary_name(cfg, node)).gitlab_yml)


def engine_elsewhere(cfg: Settings, node: str) -> str:
    """The engine node `node` runs on when it is not the CLI's ("" when it is): a pass for
    such a node runs in its worker there, or not at all (its database is not here)."""
    engine = cfg.node(node).engine
    return engine.label if engine.is_remote else ""


def through_worker(
    settings,
    kind: str,
    selection: dict,
    verb: str,
    nodes: dict[str, str] | None = None,
    elsewhere: str = "",
) -> list[dict] | None:
    """The pass's per-repository events, run by the worker; None when it cannot take it
    (then the caller runs the pass in-process, having said so). `nodes` names the node
    behind each side ("primary", "secondary") for the fix of a registry it cannot read.
    `elsewhere`: the engine the node runs on, when not the CLI's (no pass in-process)."""
    from gdk_geo.ops import worker_client

    events = worker_client.start_pass(settings, kind, selection)
    try:
        first = next(events)
    except worker_client.WorkerStopped as exc:
        _worker_stopped(settings, str(exc), 0, None)
    except worker_client.PassRefused as exc:
        raise GdkGeoError(
            str(exc),
            fix="use the path part of the image, e.g. `group/app` for localhost:5000/group/app",
        ) from None
    except worker_client.WorkerUnavailable as exc:
        if elsewhere:
            raise GdkGeoError(
                f"the Geo worker of node {settings.node_name} ({elsewhere}) cannot take this: "
                f"{exc}; its database is on that engine, so no pass runs in this process",
                fix=f"`invoke geo.status` shows whether it runs; `invoke geo.restart --node "
                f"{settings.node_name}` starts it again",
            ) from None
        err.print(
            f"note: the Geo worker cannot take this ({exc}): {_IN_PROCESS[kind]} in this process",
            markup=False,
            soft_wrap=True,
        )
        return None
    done: dict = {}
    found: list[dict] = []
    with _repository_bar(first.get("total"), verb) as advance:
        try:
            for event in itertools.chain([first], events):
                if event["type"] == "done":
                    done = event
                elif event["type"] in ("result", "diff"):
                    advance(event["repository"])
                    found.append(event)
        except worker_client.WorkerStopped as exc:
            _worker_stopped(settings, str(exc), len(found), first.get("total"))
    _raise_pass_error(done, nodes or {})
    found.sort(key=lambda event: event["position"])
    return found


def _worker_stopped(
    settings: SecondaryWorkerSettings, why: str, done: int, total: int | None
) -> NoReturn:
    """One line for a worker that stopped answering mid-pass, its fix, and exit 3."""
    where = f"{settings.listen_address}:{settings.port}"
    of = f" of {total}" if total is not None else ""
    err.print(
        f"[bold red]✗[/] the Geo worker at {where} stopped answering during the pass, after "
        f"{done}{of} repositories ({escape(why)})",
        soft_wrap=True,
    )
    err.print(
        "  fix:   `invoke geo.status` shows whether it still runs (the pass goes on if it "
        "does), `invoke geo.logs` why it stopped; then run this task again",
        markup=False,
        soft_wrap=True,
    )
    raise TaskEnded(WORKER_STOPPED)


def _raise_pass_error(done: dict, nodes: dict[str, str]) -> None:
    """Report a pass the worker could not finish the way the in-process run would; the fix
    for an unreadable registry names the node behind that side when the caller knows it
    (the worker knows its own name, not the primary's)."""
    if done.get("error") == "unreadable":
        node = nodes.get(done.get("side", ""))
        if node:
            from gdk_geo.secondary.verify import unreadable_fix

            _unreadable(done["line"], unreadable_fix(node))
        _unreadable(done["line"], done["fix"])
    if done.get("error"):
        raise GdkGeoError(done["error"], fix=done.get("fix"))


def sync_in_process(settings, selection: dict) -> list[dict]:
    """`geo.sync` without the worker: the sync engine in this process, as before."""
    from gdk_geo.secondary.passes import result_json
    from gdk_geo.secondary.replicator import sync_once

    names = selection["repositories"]
    total = len(names) if names else None
    if selection["all"] and out.is_terminal:
        total = _catalog_size(settings)
    with _repository_bar(total, "synced") as advance:
        results = asyncio.run(
            sync_once(
                settings,
                names or None,
                selection["all"],
                lambda r: advance(r.repository),
                failed=selection["failed"],
            )
        )
    return [result_json(result) for result in results]


@contextmanager
def _repository_bar(total: int | None, verb: str = "synced") -> Iterator[Callable[[str], None]]:
    """A live bar of repositories done on a terminal; nothing elsewhere (scripts, CI)."""
    if not out.is_terminal:
        yield lambda _repository: None
        return
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn

    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn())
    last = TextColumn("{task.completed} repositories")
    with Progress(*columns, last, console=out, transient=True) as progress:
        bar = progress.add_task(verb, total=total)
        yield lambda repository: progress.update(bar, advance=1, description=f"{verb} {repository}")


def _catalog_size(settings: SecondaryWorkerSettings) -> int | None:
    """How many repositories `--all` will sync, so its bar has an end (None when unknown)."""
    from gdk_geo.registry.errors import RegistryError
    from gdk_geo.secondary.clients import registry_clients

    async def count() -> int:
        async with registry_clients(settings) as (source, _target):
            return len(await source.catalog())

    try:
        return asyncio.run(count())
    except (RegistryError, GdkGeoError):
        return None  # the sync itself reports the problem


def difference(event: dict) -> dict:
    """A verification event as `geo.verify --json` prints a difference (RepositoryDiff's)."""
    return {key: value for key, value in event.items() if key not in ("type", "position", "clean")}


def print_difference(d: dict) -> None:
    out.print(f"[red]✗[/] {d['repository']}")
    for tag, digest in d["missing"].items():
        out.print(f"    missing on the secondary: {tag} ({digest})")
    for tag, digest in d["extra"].items():
        out.print(f"    only on the secondary:    {tag} ({digest})")
    for tag, (primary, secondary) in d["mismatched"].items():
        out.print(f"    different digest:         {tag} primary {primary} secondary {secondary}")
    for referrer, subject in d["missing_referrers"].items():
        out.print(f"    referrer missing:         {referrer} (of {subject})")


def _unreadable(line: str, fix: str) -> NoReturn:
    err.print(f"[bold red]✗[/] {escape(line)}", soft_wrap=True)
    err.print(f"  fix:   {fix}", markup=False, soft_wrap=True)
    raise TaskEnded(2)


def verify_in_process(
    settings, primary: str, nodes: dict[str, str] | None = None
) -> tuple[list[dict], list[str]]:
    """`geo.verify` without the worker: both registries compared from this process, what
    differs queued for the worker's next look at the database (the results, the queued).
    `nodes` names the node behind each side, for the fix of a registry it cannot read."""
    from gdk_geo.secondary.verify import SideUnreadable, unreachable, verify_registries

    try:
        diffs = asyncio.run(verify_registries(settings, primary))
    except SideUnreadable as exc:
        _unreadable(*unreachable(exc, nodes))
    queued = _queue_differences(settings, diffs)  # records the clean ones' verification too
    return [{**asdict(d), "clean": d.clean} for d in diffs], queued


def _queue_differences(settings: SecondaryWorkerSettings, diffs: list[RepositoryDiff]) -> list[str]:
    """Record every outcome and queue what differs for the worker; a tracking database we
    cannot write is a note."""
    from gdk_geo.secondary.verify import queue_for_sync

    try:
        return queue_for_sync(settings, diffs)
    except GdkGeoError as exc:
        err.print(f"note: not queued for sync: {exc.what}", markup=False, soft_wrap=True)
        return []
