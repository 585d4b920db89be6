"""A node's Geo service as a container, on an engine of its own.

On the CLI's engine a node's service is a local process (`services.py`): quick to restart,
easy to debug. On another engine it cannot be, so it runs there as a container of the
services image, with host networking (it binds the node's address, and its registry's
notifications reach it on the node's own loopback), the node's root volume at `/node`, and
a label holding the digest of what it read when it started (its gitlab.yml and signing
pair, and the image): a different digest means recreate, anything else is left running,
which keeps `geo.setup` idempotent across engines as on one.
"""

from __future__ import annotations

from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container

from gdk_geo.errors import GdkGeoError
from gdk_geo.runtime import containers, services, sites
from gdk_geo.runtime.services_image import service_command


@dataclass(frozen=True)
class ServiceSpec:
    """What one node's service container is made from."""

    names: sites.SiteNames
    image: str
    module: str  # gdk_geo.primary or gdk_geo.secondary, as the node's gitlab.yml says
    settings_hash: str  # of the gitlab.yml and signing pair it will read
    project_root: str

    @property
    def digest(self) -> str:
        return f"{self.settings_hash}:{self.image}:{self.module}"


def _create(client: docker.DockerClient, spec: ServiceSpec) -> Container:
    names = spec.names
    try:
        return client.containers.run(
            spec.image,
            command=service_command(spec.module, sites.service_config_path()),
            name=names.service,
            detach=True,
            network_mode="host",
            volumes={names.root_volume: {"bind": sites.NODE_ROOT, "mode": "rw"}},
            environment={services.NODE_ENV: names.node, services.PROJECT_ENV: spec.project_root},
            restart_policy={"Name": "unless-stopped"},
            labels=sites.labels(
                names.node, spec.project_root, **{sites.LABEL_SETTINGS: spec.digest}
            ),
        )
    except docker.errors.APIError as exc:
        raise GdkGeoError(
            f"could not start the {names.node} Geo service container: {exc.explanation or exc}",
            fix="`invoke geo.status` shows what runs; `invoke geo.logs --node "
            f"{names.node}` shows why it stopped",
        ) from None


def ensure(client: docker.DockerClient, spec: ServiceSpec, *, restart: bool = False) -> str:
    """Make the node's service container run what the node has now; the action taken:
    unchanged, started, restarted, created or recreated."""
    current = containers.find_ours(client, spec.names.service, spec.project_root)
    if current is None:
        _create(client, spec)
        return "created"
    if current.labels.get(sites.LABEL_SETTINGS) != spec.digest:
        current.remove(force=True)
        _create(client, spec)
        return "recreated"
    if restart:
        current.restart(timeout=10)
        return "restarted"
    if current.status != "running":
        current.start()
        return "started"
    return "unchanged"


def running(client: docker.DockerClient, name: str) -> bool:
    container = containers.find(client, name)
    return container is not None and container.status == "running"


def log_tail(client: docker.DockerClient, name: str, lines: int = 20) -> str:
    """The last lines the service printed (for error messages)."""
    container = containers.find(client, name)
    if container is None:
        return f"(no container {name})"
    return container.logs(tail=lines).decode(errors="replace")
