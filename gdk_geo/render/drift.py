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

from gdk_geo import render
from gdk_geo.project import Project
from gdk_geo.project.secret_store import stored_secrets
from gdk_geo.settings import Member, Settings


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
    """Why a secondary's primary_api_url reaches no primary registry (one line per such
    secondary; only `secondary`'s when named), or None when each syncs from it."""
    problems = [
        problem
        for member in cfg.layout.secondaries
        if secondary in (None, member.name)
        and (problem := _api_url_problem(cfg, member)) is not None
    ]
    return "\n".join(problems) or None


def _api_url_problem(cfg: Settings, member: Member) -> str | None:
    """Why secondary `member`'s primary_api_url is not the primary registry (https, a local
    name, the current primary registry's port), or None when it is."""
    url_text = cfg.primary_api_url_of(member.name)
    aim = cfg.aim_of(url_text)
    if aim.is_primary_registry:
        return None
    if aim.node is not None and not aim.node.is_primary:
        what = f"that is the registry of {aim.node.name}, a secondary"
    elif aim.node is not None:
        what = (
            f"nothing of ours listens on {aim.scheme}:// on port {aim.port} "
            "(the primary registry serves HTTPS)"
        )
    else:
        where = f"port {aim.port}" if aim.port is not None else "that address"
        what = f"nothing of ours listens on {where}"
    registry = cfg.primary.registry_url
    return f"{member.api_url_key} is {url_text!r}: {what}; the primary registry is {registry}"
