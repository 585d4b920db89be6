"""What the bundled services read from their node's rendered `gitlab.yml`.

GitLab reads its registry and Geo settings from `config/gitlab.yml`; the bundled primary
service and secondary worker do the same, so the rendered file is the single source of
truth at run time. Relative paths in it are relative to the node root (the directory that
holds `config/`), which keeps rendered files identical wherever the project lives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from gdk_geo.errors import GdkGeoError


@dataclass(frozen=True)
class TokenAuthSettings:
    """Registry token auth as `gitlab.yml` has it (GDK's `registry.key`, `registry.issuer`).

    `enabled` False (or a gitlab.yml rendered before token auth) means anonymous registries;
    the user and password are still the registry user's (the admin page's login).
    """

    enabled: bool = False
    key_path: Path = Path("localhost.key")
    certificate_path: Path = Path("localhost.crt")
    issuer: str = "gitlab-issuer"
    service: str = "container_registry"
    realm: str = ""
    token_expire_delay: float = 300.0
    username: str = "root"
    password: str = field(default="", repr=False)


@dataclass(frozen=True)
class PrimaryServiceSettings:
    """Settings of the primary's Geo service (receives registry events, serves the event log)."""

    node_root: Path
    listen_address: str
    port: int
    notification_secret: str
    node_token: str
    event_log_path: Path
    registry_api_url: str
    ca_file: Path
    auth: TokenAuthSettings = TokenAuthSettings()


@dataclass(frozen=True)
class SecondaryWorkerSettings:
    """Settings of the secondary's Geo worker (follows the event log, syncs the registry)."""

    node_root: Path
    listen_address: str
    port: int
    primary_geo_url: str
    node_token: str
    registry_api_url: str
    ca_file: Path
    tracking_db_path: Path
    replication_enabled: bool
    primary_api_url: str
    backfill_interval: float
    verification_interval: float
    max_concurrent_repositories: int
    max_concurrent_blobs: int
    auth: TokenAuthSettings = TokenAuthSettings()
    hostname: str = "localhost"  # `gitlab.host`: a Host the worker's pages answer to
    node_name: str = ""  # `geo.node_name`: which node this is, for the fixes it words


def _load(gitlab_yml: Path) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(gitlab_yml.read_text())
    except FileNotFoundError:
        raise GdkGeoError(
            f"{gitlab_yml} does not exist",
            fix="run `invoke geo.reconfigure` to render the node's configuration",
        ) from None
    if not isinstance(data, dict):
        raise GdkGeoError(f"{gitlab_yml} is not a mapping", fix="run `invoke geo.reconfigure`")
    return data


def _get(data: dict[str, Any], dotted: str, source: Path) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            raise GdkGeoError(
                f"{source} has no `{dotted}`",
                fix="run `invoke geo.reconfigure` to render a complete gitlab.yml",
            )
        node = node[part]
    return node


def _path(root: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else root / path


def node_root_of(gitlab_yml: Path) -> Path:
    """The node root: `gitlab.yml` lives in `<root>/config/`."""
    return gitlab_yml.resolve().parent.parent


def load_token_auth(data: dict[str, Any], root: Path) -> TokenAuthSettings:
    """The registry token settings; absent keys (an older render) mean auth is off.

    The registry user (`registry.username`, `registry.password`) is read with auth off too:
    beyond loopback the secondary's admin page asks for it (`gdk_geo.node.exposure`).
    """
    registry = data.get("registry")
    default = TokenAuthSettings()
    if not isinstance(registry, dict):
        return default
    if not registry.get("auth_enabled"):
        return TokenAuthSettings(
            username=str(registry.get("username") or default.username),
            password=str(registry.get("password") or ""),
        )
    return TokenAuthSettings(
        enabled=True,
        key_path=_path(root, str(registry.get("key") or default.key_path)),
        certificate_path=_path(root, str(registry.get("certificate") or default.certificate_path)),
        issuer=str(registry.get("issuer") or default.issuer),
        service=str(registry.get("service") or default.service),
        realm=str(registry.get("realm") or ""),
        token_expire_delay=float(registry.get("token_expire_delay") or 300.0),
        username=str(registry.get("username") or default.username),
        password=str(registry.get("password") or ""),
    )


def load_primary(gitlab_yml: Path) -> PrimaryServiceSettings:
    """Read the primary service's settings; an empty notification secret is an error."""
    data, root = _load(gitlab_yml), node_root_of(gitlab_yml)

    def get(key: str) -> Any:
        return _get(data, key, gitlab_yml)

    secret = str(get("registry.notification_secret") or "")
    if not secret:
        raise GdkGeoError(
            "registry.notification_secret is empty: every registry notification would be refused",
            where=str(gitlab_yml),
            fix="run `invoke geo.reconfigure` (it generates a secret when gdk.yml leaves it empty)",
        )
    return PrimaryServiceSettings(
        node_root=root,
        listen_address=str(get("gitlab.listen_address")),
        port=int(get("gitlab.port")),
        notification_secret=secret,
        node_token=str(get("geo.node_token")),
        event_log_path=_path(root, str(get("geo.event_log.database"))),
        registry_api_url=str(get("registry.api_url")),
        ca_file=_path(root, str(get("registry.ca_file"))),
        auth=load_token_auth(data, root),
    )


def load_secondary(gitlab_yml: Path) -> SecondaryWorkerSettings:
    """Read the secondary worker's settings."""
    data, root = _load(gitlab_yml), node_root_of(gitlab_yml)

    def get(key: str) -> Any:
        return _get(data, key, gitlab_yml)

    replication = "geo.registry_replication."
    return SecondaryWorkerSettings(
        node_root=root,
        listen_address=str(get("gitlab.listen_address")),
        port=int(get("gitlab.port")),
        primary_geo_url=str(get("geo.primary_node_url")),
        node_token=str(get("geo.node_token")),
        registry_api_url=str(get("registry.api_url")),
        ca_file=_path(root, str(get("registry.ca_file"))),
        tracking_db_path=_path(root, str(get("geo.tracking_database"))),
        replication_enabled=bool(get(replication + "enabled")),
        primary_api_url=str(get(replication + "primary_api_url")),
        backfill_interval=float(get(replication + "backfill_interval")),
        verification_interval=float(get(replication + "verification_interval")),
        max_concurrent_repositories=int(get(replication + "max_concurrent_repositories")),
        max_concurrent_blobs=int(get(replication + "max_concurrent_blobs")),
        auth=load_token_auth(data, root),
        hostname=str(get("gitlab.host")),
        node_name=_node_name(data),
    )


def node_token_of(gitlab_yml: Path) -> str:
    """The node's `geo.node_token`, or "" when its gitlab.yml cannot be read: what the CLI
    sends to a service's token-guarded routes (required beyond loopback, ignored on it)."""
    try:
        geo = _load(gitlab_yml).get("geo")
    except (GdkGeoError, OSError, ValueError):
        return ""
    return str(geo.get("node_token") or "") if isinstance(geo, dict) else ""


def _node_name(data: dict[str, Any]) -> str:
    """`geo.node_name`, or "" when a hand-made gitlab.yml has none (nothing depends on it)."""
    geo = data.get("geo")
    return str(geo.get("node_name") or "") if isinstance(geo, dict) else ""
