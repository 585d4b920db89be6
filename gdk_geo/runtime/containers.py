"""The two registry containers: create, start, restart, stop, and describe them.

Everything goes through the docker SDK. Containers use host networking and the rendered
config makes the registry listen on the listen address (127.0.0.1 by default), which works
on every engine, those without a bridge network included; `host.docker.internal` is mapped
to the listen address so the usual notification URL (docs/registry-replication.md) works
unchanged. Each container carries a label with the hash of what it reads (config
and certificate); a different hash means the container is recreated, anything else is left
running, which is what makes `geo.setup` idempotent.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime

import docker
import docker.errors
from docker.models.containers import Container

from gdk_geo.errors import GdkGeoError
from gdk_geo.project import NodePaths
from gdk_geo.runtime.image import CONFIG_PATH_IN_CONTAINER
from gdk_geo.settings import Settings, registry_container_name
from gdk_geo.settings.topology import CONTAINER_HOST

LABEL_NODE = "org.gdk-geo.node"
LABEL_HASH = "org.gdk-geo.config-hash"
LABEL_PROJECT = "org.gdk-geo.project"

# Go's collector at its default (GOGC=100) runs every few MiB of garbage on the registry's
# small heap, and Distribution allocates plenty per request: at 400 a manifest HEAD costs
# the registry markedly less CPU, for a few MiB more memory (bench/RESULTS.md has the
# figures). Syncs are bound by the registries' CPU when they share a few cores.
REGISTRY_ENVIRONMENT = {"GOGC": "400"}


def engine() -> docker.DockerClient:
    """A docker client, or a clear error when no engine answers."""
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise GdkGeoError(
            f"no Docker engine answers ({exc})",
            fix="start the Docker engine (Docker Desktop, or `sudo systemctl start docker`), "
            "then run the command again",
        ) from None
    return client


def container_name(cfg: Settings, node: str) -> str:
    return registry_container_name(cfg.docker.container_prefix, node)


def find(client: docker.DockerClient, name: str) -> Container | None:
    try:
        return client.containers.get(name)
    except docker.errors.NotFound:
        return None


def find_ours(client: docker.DockerClient, name: str, project_root: str) -> Container | None:
    """The container `name` when this project made it; an error when another one did.

    Two clones with the same `docker.container_prefix` name their containers alike; the
    project label says whose a container is, and another project's is never touched.
    """
    container = find(client, name)
    if container is None:
        return None
    owner = container.labels.get(LABEL_PROJECT)
    if owner != project_root:
        whose = f"the project at {owner}" if owner else "something other than gdk-geo"
        raise GdkGeoError(
            f"container {name} belongs to {whose}, not to this project ({project_root})",
            fix="give this project a container prefix of its own: "
            f"`invoke geo.config.set docker.container_prefix {own_prefix(name, project_root)}`, "
            "then `invoke geo.setup`",
        )
    return container


def own_prefix(name: str, project_root: str) -> str:
    """A container prefix for this project alone: the taken one plus a hash of its root."""
    taken = name.rsplit("-", 2)[0]
    return f"{taken[:32]}-{hashlib.sha256(project_root.encode()).hexdigest()[:6]}"


def _volumes(paths: NodePaths) -> dict[str, dict[str, str]]:
    etc = "/etc/docker/registry"
    return {
        str(paths.registry_config): {"bind": CONFIG_PATH_IN_CONTAINER, "mode": "ro"},
        str(paths.certificate): {"bind": f"{etc}/registry_host.crt", "mode": "ro"},
        str(paths.key): {"bind": f"{etc}/registry_host.key", "mode": "ro"},
        str(paths.signing_certificate): {"bind": f"{etc}/localhost.crt", "mode": "ro"},
        str(paths.signing_jwks): {"bind": f"{etc}/localhost.jwks.json", "mode": "ro"},
        str(paths.registry_storage): {"bind": "/var/lib/registry", "mode": "rw"},
    }


@dataclass(frozen=True)
class Mounts:
    """What a registry container mounts, where its config is, and as whom it runs."""

    volumes: dict[str, dict[str, str]]
    config_path: str
    user: str | None


def bind_mounts(paths: NodePaths) -> Mounts:
    """A node on this machine's engine: its node root, bind-mounted, run as the user so
    storage stays readable and 0600 configs stay private."""
    paths.registry_storage.mkdir(parents=True, exist_ok=True)
    return Mounts(_volumes(paths), CONFIG_PATH_IN_CONTAINER, f"{os.getuid()}:{os.getgid()}")


@dataclass(frozen=True)
class ContainerSpec:
    """What one node's registry container is made from: the settings, the node root, the
    image it runs, the hash of what it reads, the project it belongs to, and what it
    mounts (a bind mount of the node root here, its volumes on an engine of its own)."""

    cfg: Settings
    paths: NodePaths
    image: str
    config_hash: str
    project_root: str
    mounts: Mounts | None = None  # None: bind mounts of `paths`

    @property
    def name(self) -> str:
        return container_name(self.cfg, self.paths.name)


def create(client: docker.DockerClient, spec: ContainerSpec) -> Container:
    """Create and start the node's registry container."""
    paths = spec.paths
    mounts = spec.mounts or bind_mounts(paths)
    try:
        return client.containers.run(
            spec.image,
            command=[mounts.config_path],
            name=spec.name,
            detach=True,
            network_mode="host",
            # The node's own Geo service, where its registry's notifications go.
            extra_hosts={CONTAINER_HOST: spec.cfg.node(paths.name).listen_address},
            volumes=mounts.volumes,
            user=mounts.user,
            restart_policy={"Name": "unless-stopped"},
            environment=REGISTRY_ENVIRONMENT,
            labels={
                LABEL_NODE: paths.name,
                LABEL_HASH: spec.config_hash,
                LABEL_PROJECT: spec.project_root,
            },
        )
    except docker.errors.APIError as exc:
        raise GdkGeoError(
            f"could not start the {paths.name} registry container: {exc.explanation or exc}",
            fix="`invoke geo.status` shows what runs; `invoke geo.destroy --yes` removes "
            "our containers so setup can start clean",
        ) from None


@dataclass(frozen=True)
class EnsureResult:
    container: Container
    action: str  # "unchanged", "started", "created" or "recreated"


def ensure(client: docker.DockerClient, spec: ContainerSpec) -> EnsureResult:
    """Make the node's container run the current config; touch nothing when it already does."""
    current = find_ours(client, spec.name, spec.project_root)
    if current is None:
        return EnsureResult(create(client, spec), "created")
    same_config = current.labels.get(LABEL_HASH) == spec.config_hash
    image = spec.image
    same_image = image in (current.image.tags or []) or current.attrs["Config"]["Image"] == image
    if same_config and same_image and _has_environment(current):
        if current.status == "running":
            return EnsureResult(current, "unchanged")
        current.start()
        current.reload()
        return EnsureResult(current, "started")
    current.remove(force=True)
    return EnsureResult(create(client, spec), "recreated")


def _has_environment(container: Container) -> bool:
    """Whether the container runs with `REGISTRY_ENVIRONMENT` (older ones are recreated)."""
    env = set(container.attrs["Config"].get("Env") or [])
    return all(f"{key}={value}" in env for key, value in REGISTRY_ENVIRONMENT.items())


def restart(client: docker.DockerClient, cfg: Settings, node: str, timeout: int = 10) -> None:
    container = find(client, container_name(cfg, node))
    if container is None:
        raise GdkGeoError(
            f"the {node} registry container does not exist", fix="run `invoke geo.setup`"
        )
    container.restart(timeout=timeout)


def stop(client: docker.DockerClient, name: str, project_root: str, timeout: int = 10) -> bool:
    """Stop this project's container `name`; False when it was not running."""
    container = find_ours(client, name, project_root)
    if container is None or container.status != "running":
        return False
    container.stop(timeout=timeout)
    return True


def remove(client: docker.DockerClient, name: str, project_root: str) -> bool:
    """Remove this project's container `name`; False when there was none."""
    container = find_ours(client, name, project_root)
    if container is None:
        return False
    container.remove(force=True)
    return True


def started_at(container: Container) -> datetime | None:
    """When the container last started (None when it never did)."""
    raw = container.attrs.get("State", {}).get("StartedAt", "")
    if not raw or raw.startswith("0001-"):
        return None
    # Docker prints nanoseconds; Python parses microseconds.
    main, _, frac = raw.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{main}.{(frac or '0')[:6]}").replace(tzinfo=UTC)


def logs(client: docker.DockerClient, cfg: Settings, node: str, tail: int = 20) -> str:
    container = find(client, container_name(cfg, node))
    if container is None:
        return "(no container)"
    return container.logs(tail=tail, timestamps=True).decode(errors="replace")
