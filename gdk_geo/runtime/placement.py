"""Where each node runs, and the one way the tasks reach what it runs there.

A node on the CLI's engine runs its registry as a container that bind-mounts its node root
and its Geo service as a local process (`containers`, `services`). A node on an engine of
its own (`docker.host`) runs both as containers there, its files in volumes
(`sites`, `service_containers`). The tasks ask this module for a node's registry
container, whether its service runs, its log, and to converge, stop or remove it, and do
not care which of the two it is.

Images travel here too: the registry image and the services image are made on the CLI's
engine (offline) and loaded into each other engine that lacks them, once per task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from gdk_geo.errors import GdkGeoError
from gdk_geo.project import NodePaths, Project
from gdk_geo.render import node_config_hash
from gdk_geo.runtime import containers, service_containers, services, sites
from gdk_geo.runtime.engines import Engines
from gdk_geo.runtime.image import ImageResult, Progress, ensure_registry_image, messages
from gdk_geo.runtime.services_image import PYTHON, copy_image, ensure_services_image
from gdk_geo.settings import Settings
from gdk_geo.settings.topology import Engine


@dataclass
class Placement:
    """The project's nodes, each on its engine."""

    project: Project
    cfg: Settings
    progress: Progress = field(default=messages(lambda _message: None))
    engines: Engines = field(init=False)
    _copied: set[tuple[str, Engine]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.engines = Engines(self.cfg)

    @property
    def root(self) -> str:
        return str(self.project.root)

    def paths(self, node: str) -> NodePaths:
        return self.project.node(self.cfg, node)

    def client(self, node: str) -> docker.DockerClient:
        return self.engines.of(node)

    def is_remote(self, node: str) -> bool:
        return self.engines.is_remote(node)

    def names(self, node: str) -> sites.SiteNames:
        return sites.SiteNames(self.cfg.docker.container_prefix, node)

    def engine_label(self, node: str) -> str:
        return self.cfg.node(node).engine.label

    # Images.

    @cached_property
    def registry_image_here(self) -> ImageResult:
        """The registry image on the CLI's engine (pulled or built once a task), and how."""
        binary = Path(self.cfg.registry.binary)
        return ensure_registry_image(
            self.engines.local, self.cfg.registry.image, binary, self.progress
        )

    @cached_property
    def services_image_here(self) -> str:
        """The services image on the CLI's engine, built once a task when it is not there."""
        return ensure_services_image(self.engines.local, self.progress)

    def _made_here(self, kind: str) -> str:
        return self.registry_image_here.name if kind == "registry" else self.services_image_here

    def _image_on(self, node: str, kind: str) -> str:
        """The registry or services image, present on `node`'s engine (loaded into it from
        the CLI's engine once a task, when it lacks it)."""
        name = self._made_here(kind)
        engine = self.cfg.node(node).engine
        if engine.is_remote and (kind, engine) not in self._copied:
            copy_image(name, self.engines.local, self.client(node), self.progress)
            self._copied.add((kind, engine))
        return name

    def registry_image(self, node: str) -> str:
        return self._image_on(node, "registry")

    # The registry container.

    def registry_container(self, node: str) -> Container | None:
        """Node `node`'s registry container on its engine (None: there is none)."""
        name = containers.container_name(self.cfg, node)
        return containers.find_ours(self.client(node), name, self.root)

    def _registry_spec(self, node: str) -> containers.ContainerSpec:
        paths = self.paths(node)
        mounts = None
        if self.is_remote(node):
            names = self.names(node)
            sites.ship(self.client(node), names, paths, self.registry_image(node), self.root)
            mounts = containers.Mounts(
                sites.registry_volumes(names), sites.registry_config_path(), None
            )
        return containers.ContainerSpec(
            self.cfg, paths, self.registry_image(node), node_config_hash(paths), self.root, mounts
        )

    def converge_registry(self, node: str, *, restart: bool = False) -> str:
        """Make `node`'s registry run what its node root holds now (its files shipped to
        its engine first); with `restart`, restart it even when nothing changed."""
        spec = self._registry_spec(node)
        current = self.registry_container(node)
        if (
            restart
            and current is not None
            and current.labels.get(containers.LABEL_HASH) == (spec.config_hash)
        ):
            current.restart(timeout=10)
            return "restarted"
        return containers.ensure(self.client(node), spec).action

    def registry_logs(self, node: str, tail: int = 20) -> str:
        container = self.registry_container(node)
        if container is None:
            return "(no container)"
        return container.logs(tail=tail, timestamps=True).decode(errors="replace")

    # The Geo service.

    def service_running(self, node: str) -> bool:
        if self.is_remote(node):
            return service_containers.running(self.client(node), self.names(node).service)
        return services.state(self.paths(node)).running

    def converge_service(self, node: str, *, changed: bool, restart: bool = False) -> str:
        """Make `node`'s Geo service run what its node root holds now: restarted when
        `restart`, or when it runs settings other than those (`changed`: its files were
        rendered anew); the action taken."""
        paths = self.paths(node)
        if self.is_remote(node):
            spec = service_containers.ServiceSpec(
                self.names(node),
                self._image_on(node, "services"),
                services.module_of(paths),
                services.settings_hash(paths) or "",
                self.root,
            )
            return service_containers.ensure(self.client(node), spec, restart=restart)
        services.stop_strays(paths, self.project.root)
        running = services.state(paths).running
        if running and (restart or changed or not services.runs_current_settings(paths)):
            services.stop(paths)
            services.start(paths, self.project.root)
            return "restarted"
        _, started = services.start(paths, self.project.root)
        return "started" if started else "unchanged"

    def run_python(self, node: str, code: str, *args: str) -> str | None:
        """What Python `code` prints, run in the Geo service container of `node` (on an
        engine of its own), as the service meets its files; None when it is not running."""
        container = containers.find(self.client(node), self.names(node).service)
        if container is None or container.status != "running":
            return None
        result = container.exec_run([PYTHON, "-c", code, *args])
        return result.output.decode(errors="replace").strip()

    def stop_service(self, node: str) -> bool:
        """Stop `node`'s Geo service; whether it was running."""
        if self.is_remote(node):
            return containers.stop(self.client(node), self.names(node).service, self.root)
        return services.stop(self.paths(node), project_root=self.project.root)

    def service_log_tail(self, node: str, lines: int = 20) -> tuple[str, str]:
        """The last lines of `node`'s service log, and where they come from."""
        if self.is_remote(node):
            name = self.names(node).service
            where = f"container {name} on {self.engine_label(node)}"
            return service_containers.log_tail(self.client(node), name, lines), where
        log = self.paths(node).service_log
        return services.tail(log, lines), str(log)

    def node_file(self, node: str, relative: str, into: Path) -> Path | None:
        """Where node `node`'s file `relative` (of its node root: a database) can be read:
        in its node root on this machine, or copied from its engine into `into`. None when
        the node has no such file, or its engine does not answer."""
        if not self.is_remote(node):
            local = self.paths(node).root / relative
            return local if local.exists() else None
        try:
            return sites.fetch(self.client(node), self.names(node), relative, into, self.root)
        except (GdkGeoError, docker.errors.DockerException):
            return None

    # Everything of a node.

    def stop_node(self, node: str) -> list[str]:
        """Stop `node`'s service and registry; what was stopped."""
        stopped = [f"{node} Geo service"] if self.stop_service(node) else []
        name = containers.container_name(self.cfg, node)
        if containers.stop(self.client(node), name, self.root):
            stopped.append(name)
        return stopped

    def remove_node(self, node: str, *, data: bool) -> list[str]:
        """Remove `node`'s containers on an engine of its own (and its volumes with
        `data`); what was removed. A node on the CLI's engine is `lifecycle`'s."""
        if not self.is_remote(node):
            raise GdkGeoError(f"node {node} is on the CLI's engine")  # a caller's mistake
        client, names = self.client(node), self.names(node)
        removed = []
        for name in (names.service, containers.container_name(self.cfg, node), names.carrier):
            if containers.remove(client, name, self.root):
                removed.append(name)
        if data:
            removed += sites.remove_volumes(client, names, self.root)
        return removed
