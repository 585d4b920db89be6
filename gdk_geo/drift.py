"""Drift: where what is on disk or running is no longer what gdk.yml asks for.

`geo.check` and the lifecycle tasks ask the same questions: was a rendered file edited by
hand, did gdk.yml change since the last render, does a running service or container still
run the settings it was started with. The answers come from what gdk.yml renders to now
(in memory, nothing written), never from the last render alone: a render that was not
followed by a restart leaves the old settings running.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from gdk_geo import config, render
from gdk_geo.project import Project
from gdk_geo.secret_store import stored_secrets
from gdk_geo.settings import Settings


@dataclass(frozen=True)
class RenderDrift:
    """Rendered files edited by hand, and files gdk.yml would now render differently."""

    edited: list[Path]
    stale: list[Path]


def render_drift(project: Project, cfg: Settings) -> RenderDrift:
    """Compare every rendered file with the last render's record and with gdk.yml now."""
    secrets = stored_secrets(
        project.secrets_dir(cfg), cfg.registry.notification_secret, cfg.registry.auth.password
    )
    state_path = project.data_dir(cfg) / render.STATE_FILE
    try:
        state = json.loads(state_path.read_text())
    except (OSError, ValueError):
        state = {}
    if secrets is None:  # never rendered with this data_dir: every file is stale
        return RenderDrift([], [n.registry_config for n in project.nodes(cfg)])
    files = render.render_files(project, cfg, secrets)
    edited = render.hand_edited(files, state if isinstance(state, dict) else {})
    stale = [f.path for f in files if f.path not in edited and _content(f.path) != f.content]
    return RenderDrift(edited, stale)


def _content(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def api_url_problem(cfg: Settings, secondary: str | None = None) -> str | None:
    """Why the primary_api_url of `secondary` (default: the first secondary) reaches
    nothing of ours, or None when it is the current primary registry (https, a local
    name, the primary registry's port)."""
    url_text = cfg.primary_api_url_of(secondary) if secondary else cfg.primary_api_url
    url = urlsplit(url_text)
    try:
        port = url.port
    except ValueError:
        port = None
    local = url.hostname in config.LOCAL_HOSTS | {cfg.hostname, cfg.listen_address}
    registry_port = cfg.primary.registry_port  # the current primary, after a promotion too
    if url.scheme == "https" and local and port == registry_port:
        return None
    where = f"port {port}" if port is not None else "that address"
    if local and port == registry_port:
        where = f"{url.scheme}:// on port {port} (the primary registry serves HTTPS)"
    return (
        f"{config.API_URL_KEY} is {url_text!r}: nothing of ours listens on {where}; "
        f"the primary registry is {cfg.primary.registry_url}"
    )
