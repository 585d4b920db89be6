"""Render each node's registry `config.yml` and `gitlab.yml` from the Jinja templates.

Rendering is careful with the user's files: writes are atomic; an unchanged render touches
nothing (the mtime stays, so nothing restarts); a changed render prints a unified diff, with
secrets masked, and keeps a backup. A rendered file edited by hand is never overwritten
silently: we remember the hash of what we wrote (`.gdk-geo/rendered.json`) and refuse to
replace a file whose content no longer matches it unless `--force` is given, in which case
the hand-edited file is backed up first. Refusing (rather than warning) is the choice
because a hand edit to a registry config is usually a debugging experiment the user wants to
keep; the error says how to keep it (copy it aside) or drop it (`--force`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write, files_digest
from gdk_geo.project import EVENT_LOG, TEMPLATES, TRACKING_DB, NodePaths, Project, links, roles
from gdk_geo.project.secret_store import ProjectSecrets
from gdk_geo.settings import Settings
from gdk_geo.settings.topology import Node, url_host
from gdk_geo.settings.values import duration_seconds, masked

STATE_FILE = "rendered.json"


@dataclass(frozen=True)
class RenderedFile:
    path: Path
    content: str
    node: str


@dataclass(frozen=True)
class Change:
    """What rendering did to one file: created, updated or unchanged (and the masked diff)."""

    path: Path
    node: str
    status: str
    diff: str = ""
    backup: Path | None = None


def _host_port(address: str, port: int) -> str:
    """`address:port` as a YAML scalar: an IPv6 address is bracketed, and then quoted,
    since a plain scalar starting with `[` is a YAML list (`[::1]:5000` does not parse)."""
    if ":" in address:
        return json.dumps(f"{url_host(address)}:{port}")
    return f"{address}:{port}"


def environment() -> Environment:
    """Jinja with StrictUndefined: a typo in a template is an error, not an empty string."""
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["host_port"] = _host_port
    return env


def template_context(
    cfg: Settings,
    secrets: ProjectSecrets,
    node: Node,
    recorded: roles.Roles | None = None,
    shaped: links.Links | None = None,
) -> dict:
    """What the templates see: the node they render for, the primary (a secondary points
    at it) and the settings; every URL comes from the derived values in `settings`, or,
    between nodes whose link is shaped (`shaped`, `geo.link`), from their relays."""
    replication = cfg.replication(node.name)
    recorded = recorded or roles.Roles(primary=cfg.primary_name)
    shaped = shaped or links.Links()
    primary = cfg.primary_name
    api_url = replication.primary_api_url.rstrip("/") or links.reach(
        cfg, shaped, node.name, primary, "registry"
    )
    # A fenced node holds what the primary may lack until `geo.reconcile`: read-only, and
    # its worker does not sync (a sync would delete those tags).
    fenced = node.name in recorded.fenced
    return {
        "node": node,
        "read_only": node.name in roles.read_only(recorded),
        "primary": cfg.primary,
        "primary_node_url": links.reach(cfg, shaped, node.name, primary, "service"),
        "hostname": node.hostname,
        "listen_address": node.listen_address,
        "notification_secret": secrets.notification_secret.value,
        "node_token": secrets.node_token.value,
        "registry_http_secret": secrets.registry_http_secret.value,
        "registry_log_level": cfg.registry.log_level,
        "databases": {"event_log": EVENT_LOG, "tracking": TRACKING_DB},
        "notifications": cfg.registry.notifications,
        "auth": {
            "enabled": cfg.registry.auth_enabled,
            "realm": node.realm_url,
            "username": cfg.registry.auth.username,
            "password": secrets.registry_password.value,
            "token_expire_delay": duration_seconds(cfg.registry.auth.token_expire_delay),
        },
        "replication": {
            "enabled": replication.enabled and not fenced,
            "primary_api_url": api_url,
            "backfill_interval": duration_seconds(replication.backfill_interval),
            "verification_interval": duration_seconds(replication.verification_interval),
            "max_concurrent_repositories": replication.max_concurrent_repositories,
            "max_concurrent_blobs": replication.max_concurrent_blobs,
        },
    }


def render_files(project: Project, cfg: Settings, secrets: ProjectSecrets) -> list[RenderedFile]:
    """Every rendered file of every node, in memory; each is checked to be valid YAML."""
    env = environment()
    files: list[RenderedFile] = []
    recorded = roles.current(cfg, project.data_dir(cfg))
    shaped = links.read(project.data_dir(cfg))
    for node in cfg.nodes:
        name = node.name
        paths = project.node(cfg, name)
        context = template_context(cfg, secrets, node, recorded, shaped)
        for template, target in (
            ("registry/config.yml.j2", paths.registry_config),
            ("gitlab.yml.j2", paths.gitlab_yml),
        ):
            content = env.get_template(template).render(context)
            try:
                YAML(typ="safe").load(content)
            except YAMLError as exc:  # a template bug, not a user mistake: keep the detail
                raise GdkGeoError(f"{template} rendered invalid YAML for {name}: {exc}") from exc
            files.append(RenderedFile(target, content, name))
    return files


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Rendered keys whose value is a secret, and how that value is written: `key: "value"` or
# `Authorization: ["value"]`. Masking by key, not only by the current values, hides every
# value such a key ever held: the old one in the diff of a rotated secret included.
_SECRET_LINE = re.compile(
    r"^(?P<lead>\s*(?:password|secret|notification_secret|node_token|Authorization):\s*\[?)"
    r'(?P<value>"(?:[^"\\]|\\.)*"|[^\s\]]+)',
    re.MULTILINE,
)


def _mask_secret_keys(text: str) -> str:
    """Every value of a secret-bearing key, whichever value it is, masked."""

    def hide(match: re.Match[str]) -> str:
        value = match["value"]
        bare = value[1:-1] if value.startswith('"') else value
        return match["lead"] + masked(bare)

    return _SECRET_LINE.sub(hide, text)


def _mask(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        if value:
            text = text.replace(value, masked(value))
    return _mask_secret_keys(text)


def _load_state(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _backup(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    atomic_write(backup, path.read_bytes(), mode=0o600)
    return backup


def hand_edited(files: list[RenderedFile], state: dict[str, str]) -> list[Path]:
    """Rendered files whose content is no longer what we last wrote."""
    edited = []
    for f in files:
        recorded = state.get(str(f.path))
        if f.path.exists() and recorded and _sha256(f.path.read_text()) != recorded:
            edited.append(f.path)
    return edited


def write_files(
    files: list[RenderedFile], state_path: Path, secrets: ProjectSecrets, *, force: bool = False
) -> list[Change]:
    """Write what changed, atomically; refuse to clobber hand edits unless `force`."""
    state = _load_state(state_path)
    recorded = dict(state)
    edited = hand_edited(files, state)
    if edited and not force:
        listing = "\n".join(f"  {p}" for p in edited)
        raise GdkGeoError(
            f"these rendered files were edited by hand since gdk-geo wrote them:\n{listing}",
            fix="put the change in gdk.yml or the templates; to discard the edits run "
            "`invoke geo.reconfigure --force` (it backs each file up first)",
        )
    hidden = [
        s.value
        for s in (
            secrets.notification_secret,
            secrets.node_token,
            secrets.registry_http_secret,
            secrets.registry_password,
        )
    ]
    changes = []
    for f in files:
        old = f.path.read_text() if f.path.exists() else None
        if old == f.content:
            changes.append(Change(f.path, f.node, "unchanged"))
        else:
            backup = _backup(f.path) if old is not None else None
            diff = "".join(
                difflib.unified_diff(
                    _mask(old or "", hidden).splitlines(keepends=True),
                    _mask(f.content, hidden).splitlines(keepends=True),
                    fromfile=f"{f.path} (before)",
                    tofile=f"{f.path} (after)",
                )
            )
            atomic_write(f.path, f.content, mode=0o600)  # they hold secrets
            changes.append(
                Change(f.path, f.node, "created" if old is None else "updated", diff, backup)
            )
        state[str(f.path)] = _sha256(f.content)
    if state != recorded:
        atomic_write(state_path, json.dumps(state, indent=2, sort_keys=True) + "\n", mode=0o600)
    return changes


def node_config_hash(paths: NodePaths) -> str:
    """A hash of everything a registry container reads; a change means recreate it."""
    signing = (paths.signing_certificate, paths.signing_jwks)
    return files_digest((paths.registry_config, paths.certificate, paths.key, *signing))[:16]
