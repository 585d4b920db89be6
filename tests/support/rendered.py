"""Node files as `geo.reconfigure` renders them, for the rigs that start services themselves.

A rig that runs `python -m gdk_geo.primary`, a worker or a registry container without
`geo.setup` still hands it the files the real code renders: `render_nodes` loads a gdk.yml
text into `Settings` with `gdk_geo.settings.config` (through `Project.load`, as the tasks
do) and writes every node's `config/gitlab.yml` and `registry/config.yml` with
`gdk_geo.render` (`render_files`, which builds `template_context`, then `write_files`). A
change to the templates or to what they are given reaches the rigs as it reaches users.
What a rig then changes in a rendered file (plain HTTP instead of TLS, say) it changes with
`edit_yaml`, where a reader sees it. No certificate or signing pair is made: rigs that need
neither set `registry.auth_enabled: false` and use plain HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from helpers import FIXED_SECRETS, write_gdk_yml
from ruamel.yaml import YAML

from gdk_geo import render
from gdk_geo.fsutil import atomic_write
from gdk_geo.project import NodePaths, Project
from gdk_geo.project.secret_store import ProjectSecrets, ensure_secrets
from gdk_geo.settings import Settings


@dataclass(frozen=True)
class RenderedNodes:
    """A project rendered by `render_nodes`: its settings, its secrets, its node roots."""

    project: Project
    cfg: Settings
    secrets: ProjectSecrets

    def node(self, name: str) -> NodePaths:
        return self.project.node(self.cfg, name)


def render_nodes(
    root: Path, gdk_yml: str, secrets: Mapping[str, str] = FIXED_SECRETS
) -> RenderedNodes:
    """Write `gdk_yml` and `secrets` (by file name, as `geo.reconfigure` stores them) into a
    project at `root`, then render every node's files there as `geo.reconfigure` does.
    Rendering again (another port, say) updates the files in place. The data directory is
    the default one: the secrets go there first, so that a test may put a node's files in
    place (a tracking database, say) before the first render."""
    assert "data_dir" not in gdk_yml, "render_nodes keeps the default data_dir"
    stored = Project(root).secrets_dir(Settings())
    stored.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name, value in {**FIXED_SECRETS, **secrets}.items():
        atomic_write(stored / name, value + "\n", mode=0o600)
    write_gdk_yml(root, gdk_yml)
    project = Project(root)
    cfg = project.load()
    loaded = ensure_secrets(stored, cfg.registry.notification_secret, cfg.registry.auth.password)
    files = render.render_files(project, cfg, loaded)
    # force: a rig renders again over files it changed with `edit_yaml` (backed up first).
    render.write_files(files, project.data_dir(cfg) / render.STATE_FILE, loaded, force=True)
    return RenderedNodes(project, cfg, loaded)


def load_yaml(path: Path) -> dict[str, Any]:
    return YAML(typ="safe").load(path.read_text())


def edit_yaml(path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Change a rendered file: `edit` changes its data in place, which is written back."""
    yaml = YAML()
    data = yaml.load(path.read_text())
    edit(data)
    with path.open("w") as out:
        yaml.dump(data, out)
    return path
