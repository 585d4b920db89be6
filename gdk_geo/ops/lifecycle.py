"""What `geo.reconfigure`, `geo.setup`, `geo.restart`, `geo.stop` and `geo.destroy` do.

The invoke tasks are thin: they parse flags and print. The steps live here so tests can run
them against a real engine in a scratch project without going through a subprocess.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

import docker

from gdk_geo import render
from gdk_geo.errors import ConfigError, GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.ops import link
from gdk_geo.pki import certs, signing, trust
from gdk_geo.project import EXAMPLE, NodePaths, Project, ports, record
from gdk_geo.project.secret_store import ProjectSecrets, ensure_secrets
from gdk_geo.runtime import containers, health, services
from gdk_geo.runtime.image import Progress, Step, messages
from gdk_geo.runtime.placement import Placement
from gdk_geo.settings import Settings

Say = Callable[[str], None]
HEALTH_TIMEOUT = 30.0


@dataclass
class Reconfigured:
    """The outcome of rendering: settings, secrets, certificates and file changes."""

    cfg: Settings
    secrets: ProjectSecrets
    certificates: certs.CertificateReport
    changes: list[render.Change]
    created_gdk_yml: bool
    signing_pair: signing.SigningReport | None = None
    client_trust: trust.TrustReport | None = None  # the clients' files under <data_dir>/trust

    def changed_nodes(self) -> set[str]:
        return {c.node for c in self.changes if c.status != "unchanged"}


def ensure_gdk_yml(project: Project) -> bool:
    """Copy gdk.example.yml to gdk.yml when the user has none yet; True when copied."""
    if project.gdk_yml.exists():
        return False
    atomic_write(project.gdk_yml, EXAMPLE.read_text(), mode=0o600)
    return True


def _docker_or_none() -> docker.DockerClient | None:
    try:
        return containers.engine()
    except GdkGeoError:
        return None


def _known_nodes(project: Project, cfg: Settings | None) -> list[NodePaths]:
    """The node roots gdk.yml names now and those the project last started with."""
    known = project.nodes(cfg) if cfg is not None else []
    for recorded in record.read(project):
        known += [paths for paths in recorded.nodes if paths not in known]
    return known


def _container_names(project: Project, cfg: Settings | None) -> list[str]:
    """Our containers' names by gdk.yml now and by the record, primary's first."""
    names = [containers.container_name(cfg, node) for node in cfg.node_names] if cfg else []
    for recorded in record.read(project):
        names += [
            recorded.container_name(n)
            for n in recorded.node_names
            if recorded.container_name(n) not in names
        ]
    return names


def _our_pids(project: Project, cfg: Settings, client: docker.DockerClient | None) -> set[int]:
    """Processes of this project's services and of the registries in its containers."""
    pids: set[int] = set()
    for paths in _known_nodes(project, cfg):
        current = services.state(paths)
        if current.running and current.pid is not None:
            pids.add(current.pid)
    for name in _container_names(project, cfg) if client is not None else ():
        container = containers.find(client, name)
        if container is None or container.labels.get(containers.LABEL_PROJECT) != str(project.root):
            continue
        pids.update(ports.process_tree(container.attrs.get("State", {}).get("Pid") or 0))
    return pids


def our_ports(project: Project, cfg: Settings, client: docker.DockerClient | None) -> set[int]:
    """Ports our own running services and containers hold now (they are not conflicts).

    Found from the processes that hold them, not from the last render: after a port change
    that was rendered but not restarted, the old port is still held by our own service.
    """
    return ports.listening_ports(_our_pids(project, cfg, client))


def reconfigure(
    project: Project, *, force: bool = False, check_in_use: bool = True
) -> Reconfigured:
    """Everything before Docker: settings, ports, secrets, certificates, rendered files."""
    created = ensure_gdk_yml(project)
    cfg = project.load()
    held = our_ports(project, cfg, _docker_or_none()) if check_in_use else set()
    ports.check_ports(
        cfg.listeners,
        ours=held if check_in_use else (lambda _port: True),
        host=cfg.listen_address,
        hosts={key: host for key, (host, _port) in cfg.local_listeners.items()},
    )
    secrets = ensure_secrets(
        project.secrets_dir(cfg), cfg.registry.notification_secret, cfg.registry.auth.password
    )
    every = project.nodes(cfg)
    for paths in every:
        # A node on an engine of its own keeps its storage and databases in volumes there.
        here = (
            ()
            if cfg.node(paths.name).engine.is_remote
            else (paths.registry_storage, paths.root / "geo")
        )
        for directory in (*here, paths.log_dir, paths.gitlab_yml.parent):
            directory.mkdir(parents=True, exist_ok=True)
    # The primary makes the pairs (or keeps them), every other node gets a copy.
    primary = project.node(cfg, cfg.primary_name).root
    others = [paths.root for paths in every if paths.name != cfg.primary_name]
    addresses = [node.hostname for node in cfg.nodes if node.hostname != cfg.hostname]
    report = certs.ensure_certificates(
        project.data_dir(cfg), cfg.hostname, primary, *others, addresses=addresses
    )
    pair = signing.ensure_signing_pair(primary, *others)
    client_trust = trust.write_client_trust(
        project.trust_dir(cfg),
        report.ca_certificate.read_bytes(),
        [cfg.node(name).registry_address for name in cfg.node_names],
    )
    files = render.render_files(project, cfg, secrets)
    changes = render.write_files(
        files, project.data_dir(cfg) / render.STATE_FILE, secrets, force=force
    )
    return Reconfigured(cfg, secrets, report, changes, created, pair, client_trust)


# Bringing nodes up.


def _unhealthy(place: Placement, node: str, what: str, probe: health.Probe) -> GdkGeoError:
    if what == "registry":
        log = place.registry_logs(node, tail=20)
        source = f"container {containers.container_name(place.cfg, node)}"
        if place.is_remote(node):
            source += f" on {place.engine_label(node)}"
    else:
        log, source = place.service_log_tail(node, 20)
    return GdkGeoError(
        f"the {node} {what} did not become healthy within {HEALTH_TIMEOUT:.0f}s "
        f"({probe.detail}); last log lines of {source}:\n{log}",
        where=node,
        fix="fix what the log says, then `invoke geo.restart --node " + node + "`",
    )


def wait_healthy_registry(place: Placement, node: str) -> None:
    """Wait until the node's registry answers `GET /v2/` over TLS verified with its cert."""
    paths = place.paths(node)
    url = place.cfg.node(node).registry_url
    probe = health.wait_until(lambda: health.probe_registry(url, paths.certificate), HEALTH_TIMEOUT)
    if not probe.ok:
        raise _unhealthy(place, node, "registry", probe)


def wait_healthy_service(place: Placement, node: str) -> None:
    """Wait until the node's Geo service answers its health endpoint."""
    url = place.cfg.node(node).service_url
    probe = health.wait_until(lambda: health.probe_service(url), HEALTH_TIMEOUT)
    if not probe.ok:
        raise _unhealthy(place, node, "Geo service", probe)


def wait_healthy(place: Placement, node_names: list[str]) -> None:
    """Wait for each node's registry and Geo service; raise on the first failure."""
    for name in node_names:
        wait_healthy_registry(place, name)
        wait_healthy_service(place, name)


def claim(place: Placement, nodes: list[str] | None = None) -> None:
    """Record what this gdk.yml starts, once none of the container names of `nodes` (all,
    by default) is another project's on its engine: a set-up refused over a shared prefix
    must leave the record as it was, or a later `geo.destroy` would try (and refuse) to
    remove the other project's containers. Only the engines of `nodes` are asked: a
    restart of one node goes on while another node's engine is away."""
    for node in nodes or place.cfg.node_names:
        place.registry_container(node)
    record.write(place.project, place.cfg)


@dataclass
class SetupResult:
    reconfigured: Reconfigured
    image: str
    image_how: str
    containers: dict[str, str] = field(default_factory=dict)  # node -> action
    services: dict[str, str] = field(default_factory=dict)  # node -> action


def setup(
    project: Project,
    say: Say = print,
    *,
    force: bool = False,
    progress: Progress | None = None,
    on_reconfigured: Callable[[Reconfigured], None] | None = None,
) -> SetupResult:
    """Render, get the images, converge every node's container and service on its engine,
    wait until healthy.

    `progress` hears of each long step (the image pull or build, starting, the health
    waits) so a terminal can show a bar; without it the steps are passed to `say`.
    `on_reconfigured` hears of the render as soon as it is done, so what it reports is
    printed before the later steps, in the order things happened.
    """
    progress = progress or messages(say)
    containers.engine()  # no engine here: say so before anything is rendered
    done = reconfigure(project, force=force)
    if on_reconfigured is not None:
        on_reconfigured(done)
    cfg = done.cfg
    place = Placement(project, cfg, progress)
    image = place.registry_image_here
    result = SetupResult(done, image.name, image.how)
    claim(place)
    link.ensure_relays(project, cfg)  # the shaped links, before the services that use them
    progress(Step("starting the registry containers and Geo services"))
    changed = done.changed_nodes()
    for name in cfg.node_names:
        result.containers[name] = place.converge_registry(name)
        result.services[name] = place.converge_service(name, changed=name in changed)
    progress(Step(f"waiting until {_the_nodes(cfg)} are healthy"))
    wait_healthy(place, list(cfg.node_names))
    return result


def restart(project: Project, node: str | None = None, *, force: bool = False) -> Reconfigured:
    """Re-render, restart the chosen nodes' containers and services, wait until healthy."""
    containers.engine()  # no engine here: say so before anything is rendered
    done = reconfigure(project, force=force)
    place = Placement(project, done.cfg)
    names = [node] if node else list(done.cfg.node_names)
    claim(place, names)
    link.ensure_relays(project, done.cfg)
    for name in names:
        place.stop_service(name)
        place.converge_registry(name, restart=True)
        place.converge_service(name, changed=True, restart=True)
    wait_healthy(place, names)
    return done


def restart_registry(project: Project, node: str) -> None:
    """Restart `node`'s registry alone in what it renders now (its service is left as it
    is) and wait until it answers: how a forced promotion makes the old primary read-only."""
    place = Placement(project, project.load())
    place.converge_registry(node, restart=True)
    wait_healthy_registry(place, node)


def _settings_or_none(project: Project) -> Settings | None:
    """gdk.yml's settings, or None when it is missing or invalid (stopping goes on anyway)."""
    try:
        return project.load()
    except ConfigError:
        return None


def _stop_services(project: Project, cfg: Settings | None) -> list[str]:
    """Stop every service of this project, wherever its node root is now or was."""
    stopped = []
    for paths in reversed(_known_nodes(project, cfg)):
        if services.stop(paths, project_root=project.root):
            stopped.append(f"{paths.name} Geo service")
    return list(dict.fromkeys(stopped))


def stop(project: Project) -> list[str]:
    """Stop every node's service and container; data stays. Returns what was stopped.

    Works from the record when gdk.yml is broken: what runs must always be stoppable.
    """
    cfg = _settings_or_none(project)
    if cfg is None and not record.read(project):
        project.load()  # nothing recorded either: say what is wrong with gdk.yml
    client = containers.engine()
    stopped = _stop_services(project, cfg)
    if cfg is not None:
        stopped += [f"{node} link relay" for node in link.stop_relays(project, cfg)]
    for name in reversed(_container_names(project, cfg)):
        if containers.stop(client, name, str(project.root)):
            stopped.append(name)
    return stopped + _on_each_site(project, cfg, lambda place, node: place.stop_node(node))


def _on_each_site(
    project: Project, cfg: Settings | None, act: Callable[[Placement, str], list[str]]
) -> list[str]:
    """`act` on every node on an engine of its own, each engine on its own: one that does
    not answer is reported after the others were done, never instead of them."""
    if cfg is None:
        return []
    place = Placement(project, cfg)
    done, unanswered = [], []
    for node in reversed(place.engines.remote_nodes()):
        try:
            done += act(place, node)
        except GdkGeoError as exc:
            unanswered.append(exc)
    if unanswered:
        raise unanswered[0]
    return done


def destroy(project: Project, *, data: bool = False) -> list[str]:
    """Stop everything and remove the containers; with `data`, also registry storage and DBs."""
    cfg = _settings_or_none(project)
    if cfg is None and not record.read(project):
        project.load()
    client = containers.engine()
    _stop_services(project, cfg)
    removed = []
    if cfg is not None:
        removed += [f"{node} link relay" for node in link.stop_relays(project, cfg, forget=True)]
    for name in _container_names(project, cfg):
        if containers.remove(client, name, str(project.root)):
            removed.append(name)
    for paths in _known_nodes(project, cfg) if data else ():
        for directory in (paths.registry_storage, paths.root / "geo"):
            if directory.exists():
                shutil.rmtree(directory)
                removed.append(str(directory))
    removed += _on_each_site(project, cfg, lambda place, node: place.remove_node(node, data=data))
    record.forget(project)
    return removed


def _the_nodes(cfg: Settings) -> str:
    """The nodes, in words: "both nodes" for a pair, "all 3 nodes" with more."""
    count = len(cfg.node_names)
    return "both nodes" if count == 2 else f"all {count} nodes"
