"""Where a gdk-geo project keeps its files.

A project is the directory holding `gdk.yml` (next to `tasks.py`). Everything gdk-geo
generates lives under its data directory (`.gdk-geo/` by default): one GDK-like root per
node, the local CA and the generated secrets.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from gdk_geo.project import roles
from gdk_geo.settings import NODE_NAMES, Settings, config

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "templates"
EXAMPLE = REPO_ROOT / "gdk.example.yml"
NODES = NODE_NAMES  # in the order they are set up
# The services' databases, relative to the node root: gitlab.yml names them this way
# (templates/gitlab.yml.j2 takes them from here), and NodePaths resolves them.
EVENT_LOG = "geo/events.sqlite3"
TRACKING_DB = "geo/tracking.sqlite3"


@dataclass(frozen=True)
class NodePaths:
    """The files of one node root, laid out like a GDK root."""

    name: str
    root: Path

    @property
    def registry_config(self) -> Path:
        return self.root / "registry" / "config.yml"

    @property
    def registry_storage(self) -> Path:
        return self.root / "registry" / "storage"

    @property
    def gitlab_yml(self) -> Path:
        return self.root / "config" / "gitlab.yml"

    @property
    def certificate(self) -> Path:
        """The TLS pair's chain (GDK's `registry_host.crt`)."""
        return self.root / "registry_host.crt"

    @property
    def key(self) -> Path:
        return self.root / "registry_host.key"

    @property
    def signing_certificate(self) -> Path:
        """The token signing certificate (GDK's `localhost.crt`, the registry's rootcertbundle)."""
        return self.root / "localhost.crt"

    @property
    def signing_key(self) -> Path:
        return self.root / "localhost.key"

    @property
    def signing_jwks(self) -> Path:
        """`localhost.crt`'s key as a JWKS, for Distribution 3.x (`auth.token.jwks`)."""
        return self.root / "localhost.jwks.json"

    @property
    def event_log(self) -> Path:
        """The primary's Geo event log (SQLite)."""
        return self.root / EVENT_LOG

    @property
    def tracking_db(self) -> Path:
        """A secondary's tracking database (SQLite)."""
        return self.root / TRACKING_DB

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def service_log(self) -> Path:
        return self.log_dir / "geo.log"

    @property
    def pidfile(self) -> Path:
        return self.root / "geo.pid"

    @property
    def loaded_settings(self) -> Path:
        """The hash of the gitlab.yml the running service started with."""
        return self.root / "geo.loaded"


@dataclass(frozen=True)
class Project:
    """A project directory and the paths derived from its settings."""

    root: Path

    @classmethod
    def locate(cls, default: Path | None = None) -> Project:
        """The project root: $GDK_GEO_ROOT when set (tests use it), else `default`, else cwd."""
        env = os.environ.get("GDK_GEO_ROOT")
        return cls(Path(env or default or Path.cwd()).resolve())

    @property
    def gdk_yml(self) -> Path:
        return self.root / "gdk.yml"

    def load(self) -> Settings:
        """gdk.yml's settings with the recorded roles in force (`roles.json`)."""
        return config.load(self.gdk_yml, in_force=self.with_roles)

    def with_roles(self, cfg: Settings) -> Settings:
        """`cfg` with the roles recorded in its data directory in force: what gdk.yml's
        settings are checked against (a promotion moves the primary registry)."""
        return roles.applied(cfg, self.data_dir(cfg))

    def data_dir(self, cfg: Settings) -> Path:
        return (self.root / cfg.data_dir).resolve()

    def node(self, cfg: Settings, name: str) -> NodePaths:
        return NodePaths(name, self.data_dir(cfg) / name)

    def nodes(self, cfg: Settings) -> list[NodePaths]:
        return [self.node(cfg, name) for name in cfg.node_names]

    def secrets_dir(self, cfg: Settings) -> Path:
        return self.data_dir(cfg) / "secrets"

    def ca_dir(self, cfg: Settings) -> Path:
        return self.data_dir(cfg) / "ca"

    def trust_dir(self, cfg: Settings) -> Path:
        """Just the CA certificate, for `skopeo --cert-dir` and Docker's certs.d."""
        return self.data_dir(cfg) / "trust"
