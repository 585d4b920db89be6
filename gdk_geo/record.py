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
from gdk_geo.project import NodePaths, Project
from gdk_geo.settings import Settings

RECORD_FILE = ".gdk-geo-record.json"


@dataclass(frozen=True)
class Recorded:
    """The container prefix and node roots a project last started with."""

    container_prefix: str
    nodes: list[NodePaths]

    def container_name(self, node: str) -> str:
        return f"{self.container_prefix}-{node}-registry"


def path(project: Project) -> Path:
    return project.root / RECORD_FILE


def write(project: Project, cfg: Settings) -> None:
    """Remember what this gdk.yml starts (unchanged when it is already recorded)."""
    data = {
        "container_prefix": cfg.docker.container_prefix,
        "nodes": {paths.name: str(paths.root) for paths in project.nodes(cfg)},
    }
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    target = path(project)
    try:
        if target.read_text() == text:
            return
    except OSError:
        pass
    atomic_write(target, text, mode=0o600)


def read(project: Project) -> Recorded | None:
    """The record, or None when there is none or it cannot be read."""
    try:
        data = json.loads(path(project).read_text())
        nodes = [NodePaths(name, Path(root)) for name, root in data["nodes"].items()]
        return Recorded(str(data["container_prefix"]), nodes)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
