"""What a project last started, kept beside gdk.yml so it can always be stopped.

`geo.stop`, `geo.destroy` and `geo.logs` must work when gdk.yml is broken or says something
else now (another `data_dir`, another container prefix): what runs was started from an
earlier gdk.yml. So setup and restart record the container prefix and each node's root in
`.gdk-geo-record.json`, in the project root (not in the data dir, which may move), and the
tasks that stop things use that record as well as what gdk.yml says today.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from gdk_geo.fsutil import atomic_write
from gdk_geo.project.paths import NodePaths, Project
from gdk_geo.settings import Settings, registry_container_name

RECORD_FILE = ".gdk-geo-record.json"


@dataclass(frozen=True)
class Recorded:
    """A container prefix and the node roots a project started with."""

    container_prefix: str
    nodes: list[NodePaths]

    def container_name(self, node: str) -> str:
        return registry_container_name(self.container_prefix, node)

    @property
    def node_names(self) -> list[str]:
        return [paths.name for paths in self.nodes]

    def as_json(self) -> dict:
        return {
            "container_prefix": self.container_prefix,
            "nodes": {paths.name: str(paths.root) for paths in self.nodes},
        }


def path(project: Project) -> Path:
    return project.root / RECORD_FILE


def write(project: Project, cfg: Settings) -> None:
    """Add what this gdk.yml starts to the record (kept until `geo.destroy`): a prefix or
    data_dir changed since is still recorded, so what it started can still be stopped."""
    started = Recorded(cfg.docker.container_prefix, project.nodes(cfg))
    entries = [entry.as_json() for entry in read(project)]
    if started.as_json() in entries:
        return
    entries.append(started.as_json())
    text = json.dumps({"started": entries}, indent=2, sort_keys=True) + "\n"
    atomic_write(path(project), text, mode=0o600)


def read(project: Project) -> list[Recorded]:
    """Everything recorded, oldest first (nothing when there is no readable record)."""
    try:
        data = json.loads(path(project).read_text())
        return [
            Recorded(
                str(entry["container_prefix"]),
                [NodePaths(name, Path(root)) for name, root in entry["nodes"].items()],
            )
            for entry in data["started"]
        ]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def forget(project: Project) -> None:
    """After `geo.destroy`: nothing of the project is left to stop."""
    path(project).unlink(missing_ok=True)
