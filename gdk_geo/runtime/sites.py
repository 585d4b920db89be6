"""What a node on an engine of its own runs, and how its files get there.

On the CLI's own engine a node's registry bind-mounts its node root and its Geo service is
a local process. Another engine may be another machine, where this checkout's paths mean
nothing, so there nothing is bind-mounted:

* the node root travels through the Docker API: `ship` tars the rendered files, the TLS
  pair and the signing pair and puts them (`put_archive`) into the node's root volume,
  through a carrier container that is created and never started;
* registry storage is a named volume, and the service's databases live in the root volume
  beside the files, where the gitlab.yml's relative paths find them;
* the Geo service runs as a container of the services image, reading the same gitlab.yml
  at `/node/config/gitlab.yml`, its log going to the engine's log (`geo.logs` reads it).

Every volume and container carries the project label, as the local containers do, and one
of another project's is never touched. `fetch` reads a file back (a database, for the checks
and the loss report) the way it went in, through the carrier.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from gdk_geo.errors import GdkGeoError
from gdk_geo.project import NodePaths
from gdk_geo.runtime import containers

NODE_ROOT = "/node"  # where the service container mounts the node's root volume
REGISTRY_ETC = "/etc/docker/registry"  # where the registry container mounts it (read-only)
LABEL_SETTINGS = "org.gdk-geo.settings-hash"
# The files of a node root a node reads: what `ship` puts into its root volume.
SHIPPED = (
    "config/gitlab.yml",
    "registry/config.yml",
    "registry_host.crt",
    "registry_host.key",
    "localhost.crt",
    "localhost.key",
    "localhost.jwks.json",
)
EMPTY_DIRECTORIES = ("geo", "log")


@dataclass(frozen=True)
class SiteNames:
    """The names of one node's things on its engine, all under the container prefix."""

    prefix: str
    node: str

    @property
    def root_volume(self) -> str:
        return f"{self.prefix}-{self.node}-root"

    @property
    def storage_volume(self) -> str:
        return f"{self.prefix}-{self.node}-storage"

    @property
    def carrier(self) -> str:
        return f"{self.prefix}-{self.node}-files"

    @property
    def service(self) -> str:
        return f"{self.prefix}-{self.node}-geo"

    @property
    def volumes(self) -> tuple[str, str]:
        return (self.root_volume, self.storage_volume)


def labels(node: str, project_root: str, **more: str) -> dict[str, str]:
    """The labels every container and volume of ours carries."""
    return {containers.LABEL_NODE: node, containers.LABEL_PROJECT: project_root, **more}


def registry_volumes(names: SiteNames) -> dict[str, dict[str, str]]:
    """What a site's registry container mounts: its node root where the registry's config
    looks for its certificates, read-only, and its storage volume."""
    return {
        names.root_volume: {"bind": REGISTRY_ETC, "mode": "ro"},
        names.storage_volume: {"bind": "/var/lib/registry", "mode": "rw"},
    }


def registry_config_path() -> str:
    """The registry's config.yml inside a site's registry container."""
    return f"{REGISTRY_ETC}/registry/config.yml"


def service_config_path() -> str:
    """The node's gitlab.yml inside its service container."""
    return f"{NODE_ROOT}/config/gitlab.yml"


def _ensure_volume(client: docker.DockerClient, name: str, node: str, project_root: str) -> None:
    """Create volume `name` for this project, or refuse when another project has it."""
    try:
        volume = client.volumes.get(name)
    except docker.errors.NotFound:
        client.volumes.create(name, labels=labels(node, project_root))
        return
    owner = (volume.attrs.get("Labels") or {}).get(containers.LABEL_PROJECT)
    if owner != project_root:
        raise GdkGeoError(
            f"volume {name} belongs to {owner or 'something other than gdk-geo'}, "
            f"not to this project ({project_root})",
            fix="give this project a container prefix of its own: "
            "`invoke geo.config.set docker.container_prefix <prefix>`",
        )


def _carrier(
    client: docker.DockerClient, names: SiteNames, image: str, project_root: str
) -> Container:
    """The container the node root's files go in and out through: created, never started."""
    found = containers.find_ours(client, names.carrier, project_root)
    if found is not None:
        return found
    return client.containers.create(
        image,
        name=names.carrier,
        command=["/nonexistent"],  # never started: it only holds the volume for the API
        volumes={names.root_volume: {"bind": NODE_ROOT, "mode": "rw"}},
        network_mode="none",
        labels=labels(names.node, project_root),
    )


def _archive(paths: NodePaths) -> bytes:
    """The node root's files a node reads, as a tar (directories for what it writes)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("config", "registry", *EMPTY_DIRECTORIES):
            entry = tarfile.TarInfo(directory)
            entry.type, entry.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(entry)
        for relative in SHIPPED:
            source = paths.root / relative
            if not source.exists():
                continue
            data = source.read_bytes()
            entry = tarfile.TarInfo(relative)
            entry.size, entry.mode = len(data), source.stat().st_mode & 0o777
            tar.addfile(entry, io.BytesIO(data))
    return buffer.getvalue()


def ship(
    client: docker.DockerClient, names: SiteNames, paths: NodePaths, image: str, project_root: str
) -> None:
    """Put the node root's current files into its root volume on its engine (creating the
    node's volumes first): what `geo.setup` and `geo.restart` do instead of a bind mount."""
    for volume in names.volumes:
        _ensure_volume(client, volume, names.node, project_root)
    carrier = _carrier(client, names, image, project_root)
    try:
        carrier.put_archive(NODE_ROOT, _archive(paths))
    except docker.errors.APIError as exc:
        raise GdkGeoError(
            f"could not copy node {names.node}'s files to its engine: {exc.explanation or exc}",
            fix="`invoke geo.check` shows whether the engine answers; then `invoke geo.setup`",
        ) from None


def fetch(
    client: docker.DockerClient, names: SiteNames, relative: str, into: Path, project_root: str
) -> Path | None:
    """Copy `relative` (and its SQLite journals) out of the node's root volume into
    directory `into`; the local copy, or None when the node has no such file."""
    carrier = containers.find_ours(client, names.carrier, project_root)
    if carrier is None:
        return None
    into.mkdir(parents=True, exist_ok=True)
    wanted = None
    for suffix in ("", "-wal", "-shm"):
        try:
            stream, _ = carrier.get_archive(f"{NODE_ROOT}/{relative}{suffix}")
        except docker.errors.NotFound:
            continue
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.next()
            extracted = tar.extractfile(member) if member is not None else None
            if extracted is None:
                continue
            target = into / (Path(relative).name + suffix)
            target.write_bytes(extracted.read())
            if suffix == "":
                wanted = target
    return wanted


def remove_volumes(client: docker.DockerClient, names: SiteNames, project_root: str) -> list[str]:
    """Remove the node's volumes (this project's only); the names of those removed."""
    removed = []
    for name in names.volumes:
        try:
            volume = client.volumes.get(name)
        except docker.errors.NotFound:
            continue
        if (volume.attrs.get("Labels") or {}).get(containers.LABEL_PROJECT) == project_root:
            volume.remove(force=True)
            removed.append(name)
    return removed


def remove_carrier(client: docker.DockerClient, names: SiteNames, project_root: str) -> bool:
    return containers.remove(client, names.carrier, project_root)
