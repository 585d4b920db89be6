"""The lifecycle tasks: `geo.reconfigure`, `geo.image`, `geo.setup`, `geo.login`,
`geo.restart`, `geo.stop` and `geo.destroy`.

Each parses its flags, calls `lifecycle.py` (or `image.py`, `login.py`) and prints what
was done; those modules are imported inside the tasks, so `invoke --list` does not load
Docker's SDK, cryptography or Jinja.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from invoke import task

from gdk_geo.cli.console import diff, err, out, user_errors
from gdk_geo.cli.tasks_support import FORCE_HELP, NODE_HELP, check_node, long_steps, project_of, say
from gdk_geo.project import Project

if TYPE_CHECKING:
    from gdk_geo.ops import lifecycle


def _copied_to(count: int) -> str:
    """ ", copied to 2 secondaries": what a pair's line adds when copies were written."""
    if not count:
        return ""
    return f", copied to {count} secondar{'y' if count == 1 else 'ies'}"


def print_client_trust(done: lifecycle.Reconfigured) -> None:
    """One line when the clients' files under the trust directory changed, and a note for
    each file gdk-geo left alone (not its own, or edited since): that client's view of a
    registry may then be stale, and only the user can say whether to drop the edit."""
    report = done.client_trust
    if report is None:
        return
    if report.changed:
        parts = [f"{len(report.written)} written"] + (
            [f"{len(report.removed)} removed"] if report.removed else []
        )
        out.print(f"client configuration (docs/clients.md): {', '.join(parts)}")
    for name in report.kept:
        err.print(
            f"[yellow]note[/]: kept {name} in the trust directory: gdk-geo did not write it, "
            "or it was edited since; delete it and run `invoke geo.reconfigure` to get "
            "gdk-geo's version"
        )


def print_reconfigured(done: lifecycle.Reconfigured) -> None:
    """What a reconfigure did, one line a change: the same report for setup and restart."""
    if done.created_gdk_yml:
        out.print("created gdk.yml from gdk.example.yml (it is yours to edit)")
    cert = done.certificates
    out.print(
        f"certificates: {cert.action}, valid until {cert.not_after:%Y-%m-%d}"
        + _copied_to(cert.copied_to)
    )
    pair = done.signing_pair
    if pair is not None and (pair.action != "reused" or pair.copied):
        out.print(f"token signing pair: {pair.action}" + _copied_to(pair.copied_to))
    print_client_trust(done)
    for change in done.changes:
        if change.status == "unchanged":
            continue
        note = f" (backup: {change.backup.name})" if change.backup else ""
        out.print(f"{change.status}: {change.path}{note}")
        if change.status == "updated" and change.diff:
            diff(change.diff)
    if not done.changed_nodes():
        out.print("rendered files: unchanged")


@task(help={"force": FORCE_HELP})
@user_errors
def reconfigure(c, force=False):
    """Render every node's config.yml and gitlab.yml, secrets and certificates (no Docker)."""
    from gdk_geo.ops import lifecycle

    print_reconfigured(lifecycle.reconfigure(project_of(c), force=force))


@task(help={"pull": "Pull registry.image even when present, or when an earlier pull failed."})
@user_errors
def image(c, pull=False):
    """Make sure the registry image exists: present, pulled, or built offline."""
    from gdk_geo.runtime import containers
    from gdk_geo.runtime.image import ensure_registry_image

    project = project_of(c)
    cfg = project.load()
    with long_steps() as progress:
        result = ensure_registry_image(
            containers.engine(), cfg.registry.image, Path(cfg.registry.binary), progress, pull=pull
        )
    out.print(f"registry image: {result.name} ({result.how})")


def _labelled(node) -> str:
    """A node's name, with its role when the name does not say it (`dc2 (primary)`)."""
    role = "primary" if node.is_primary else "secondary"
    return node.name if node.name == role else f"{node.name} ({role})"


def _summary(project: Project, result: lifecycle.SetupResult) -> None:
    """What runs where after a setup, and the commands to try it."""
    cfg = result.reconfigured.cfg
    if result.image_how == "built offline":
        out.print(
            f"[yellow]note[/]: {cfg.registry.image} is not available here, so every node "
            f"runs {result.image}, built offline from {cfg.registry.binary} "
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
    from gdk_geo.ops.login import login_hint

    # In the order they work: log in, make an image (none may be pullable here), push, pull.
    out.print()
    for line in login_hint(project, cfg):
        out.print(line)
    image = f"{cfg.primary.registry_address}/group/app:v1"
    out.print('Try it (README.md, "First five minutes", has more):')
    out.print(f"  tar -cf - README.md | docker import - {image}")
    out.print(f"  docker push {image}")
    for node in cfg.secondaries:
        out.print(f"  docker pull {node.registry_address}/group/app:v1")
    out.print(f"  status page: {cfg.secondaries[0].service_url}/admin/geo")


@task(help={"force": FORCE_HELP})
@user_errors
def setup(c, force=False):
    """Render, get the image, start every registry and Geo service, wait until healthy."""
    from gdk_geo.ops import lifecycle

    project = project_of(c)
    with long_steps() as progress:
        result = lifecycle.setup(
            project, say, force=force, progress=progress, on_reconfigured=print_reconfigured
        )
    _summary(project, result)


@task(
    help={
        "client": "docker (the default), podman, skopeo, or containerd (prints the ctr "
        "command lines: containerd keeps no login)."
    }
)
@user_errors
def login(c, client="docker"):
    """Log a client in to every registry (the password goes through stdin)."""
    from gdk_geo.ops.login import login as log_in

    report = log_in(project_of(c), client)
    for done in report.logins:
        out.print(f"logged in to {done.registry} ({done.node}) as {done.username}")
    for note in report.notes:
        out.print(f"note: {note}")
    if report.commands:
        out.print("run, from any directory:")
        for line in report.commands:
            out.print(f"  {line}", soft_wrap=True, highlight=False, markup=False)


@task(help={"node": NODE_HELP, "force": FORCE_HELP})
@user_errors
def restart(c, node=None, force=False):
    """Re-render what changed, restart containers and services, wait until healthy."""
    from gdk_geo.ops import lifecycle

    check_node(c, node)
    with out.status(f"restarting {node or 'every node'} and waiting until healthy"):
        done = lifecycle.restart(project_of(c), node, force=force)
    print_reconfigured(done)
    out.print(f"restarted {node or 'every node'}: healthy")


@task
@user_errors
def stop(c):
    """Stop both Geo services and registry containers; all data stays."""
    from gdk_geo.ops import lifecycle

    stopped = lifecycle.stop(project_of(c))
    out.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))


def _confirmed(data: bool) -> bool:
    """Whether the user answered yes to removing what `geo.destroy` removes."""
    what = "containers and ALL registry data" if data else "containers (data stays)"
    try:
        answer = input(f"Remove the gdk-geo {what}? [y/N] ")
    except EOFError:  # no terminal to ask (a script, CI): not a yes
        err.print("\nnote: nothing to answer from; pass --yes to destroy without asking")
        return False
    return answer.strip().lower() in ("y", "yes")


@task(
    help={
        "yes": "Do not ask for confirmation.",
        "data": "Also delete registry storage and the Geo databases.",
    }
)
@user_errors
def destroy(c, yes=False, data=False):
    """Stop everything and remove the containers (and with --data, the registry data)."""
    from gdk_geo.ops import lifecycle

    if not (yes or _confirmed(data)):
        out.print("nothing removed")
        return
    removed = lifecycle.destroy(project_of(c), data=data)
    out.print("removed: " + (", ".join(removed) if removed else "nothing"))
