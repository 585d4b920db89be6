"""Every gdk.yml setting, declared once: its type, default and one line of documentation.

The nested dataclasses below are the whole schema. Validation (`config.py`), the committed
`gdk.example.yml` and the settings table in the README are all derived from them, the way
GDK derives `gdk.example.yml` from `lib/gdk/config.rb`. To add a setting, add a field here.

The values that follow from the settings (each node's registry and Geo service URL, the
listeners, the effective primary API URL) are declared here too, on `Settings` and `Node`,
as GDK's `config.rb` declares its derived values: the templates, the tasks, the checks and
the tests all read them from here, so a URL is built in one place.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from typing import Any, get_type_hints

Check = Callable[[Any], str | None]  # returns what was expected when the value is invalid


Effective = Callable[["Settings"], Any]  # the value in use, when it follows from others


def setting(
    default: Any, doc: str, *, check: Check | None = None, effective: Effective | None = None
) -> Any:
    """Declare one setting: its default, a one-line description, an optional check, and,
    for a setting whose empty value means "derive it", how its effective value follows."""
    return field(default=default, metadata={"doc": doc, "check": check, "effective": effective})


def section(cls: type, doc: str) -> Any:
    """Declare a nested section (a dataclass of settings)."""
    return field(default_factory=cls, metadata={"doc": doc, "check": None, "effective": None})


# Checks: each returns a description of what is expected, or None when the value is fine.

_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)
_IMAGE = re.compile(r"^[a-z0-9]+([._/:@-][A-Za-z0-9_.-]+)*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,40}$")
_SECRET = re.compile(r"^[\x21-\x7e]{16,256}$")


def port(value: int) -> str | None:
    return None if 1 <= value <= 65535 else "a TCP port number from 1 to 65535"


# The registry parses counts as Go ints and durations as Go's int64 nanoseconds; a value past
# those is not a setting the registry can start with.
MAX_COUNT = 2**31 - 1
MAX_DURATION_SECONDS = (2**63 - 1) / 1e9  # Go's longest duration, about 2562047h


def positive(value: int) -> str | None:
    ok = 1 <= value <= MAX_COUNT
    return None if ok else f"a whole number from 1 to {MAX_COUNT}"


def duration(value: str) -> str | None:
    ok = _DURATION.match(value) and 0 < duration_seconds(value) <= MAX_DURATION_SECONDS
    expected = 'a positive duration such as "500ms", "1s", "2m" or "1h30m" (at most 2562047h)'
    return None if ok else expected


def hostname(value: str) -> str | None:
    return None if _HOSTNAME.match(value) else "a host name such as localhost or gdk.test"


def ip_address(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return "an IP address such as 127.0.0.1"
    return None


def image_name(value: str) -> str | None:
    return None if _IMAGE.match(value) else "an image reference such as registry:2"


def container_prefix(value: str) -> str | None:
    ok = _NAME.match(value)
    return None if ok else "lowercase letters, digits, '.', '_' or '-', such as gdk-geo"


def secret(value: str) -> str | None:
    if value == "" or _SECRET.match(value):
        return None
    return "empty (generate one) or 16 to 256 printable characters without spaces"


def username(value: str) -> str | None:
    ok = re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$", value)
    return None if ok else "a user name of letters, digits, '.', '_' or '-', such as root"


def log_level(value: str) -> str | None:
    ok = value in ("error", "warn", "info", "debug")
    return None if ok else "one of error, warn, info, debug"


def url_or_empty(value: str) -> str | None:
    ok = value == "" or re.match(r"^https?://[^\s/]+(:\d+)?/?$", value)
    return None if ok else "empty (derive it) or a URL such as https://localhost:5000"


def duration_seconds(value: str) -> float:
    """Convert a Go duration ("500ms", "1m30s") into seconds for our own services."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
    return sum(
        float(n) * units[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)(ns|us|µs|ms|s|m|h)", value)
    )


# The schema.


@dataclass(frozen=True)
class Notifications:
    timeout: str = setting(
        "500ms", "How long the registry waits for the primary's Geo service.", check=duration
    )
    threshold: int = setting(5, "Failures in a row before the registry backs off.", check=positive)
    backoff: str = setting(
        "1s", "How long the registry backs off after `threshold` failures.", check=duration
    )


@dataclass(frozen=True)
class RegistryAuth:
    username: str = setting(
        "root",
        "User that may log in to both registries (pull only on the secondary).",
        check=username,
    )
    password: str = setting(
        "", "That user's password; empty: generate one (see `invoke geo.login`).", check=secret
    )
    token_expire_delay: str = setting(
        "5m", "Lifetime of the registry tokens both Geo services issue.", check=duration
    )


@dataclass(frozen=True)
class Registry:
    image: str = setting("registry:2", "Registry image both nodes run.", check=image_name)
    binary: str = setting(
        "/usr/bin/docker-registry",
        "Local registry binary to build an offline image from when `image` cannot be pulled.",
    )
    notification_secret: str = setting(
        "", "Authorization header of registry notifications; empty: generate one.", check=secret
    )
    log_level: str = setting(
        "warn",
        "Registry log level; at info the primary's log shows the notification secret.",
        check=log_level,
    )
    notifications: Notifications = section(
        Notifications, "The primary registry's notification endpoint."
    )
    auth_enabled: bool = setting(
        True, "Registries require tokens from their node's /jwt/auth, as GDK runs them."
    )
    auth: RegistryAuth = section(RegistryAuth, "Registry token authentication.")


@dataclass(frozen=True)
class PrimaryRegistry:
    port: int = setting(5000, "Port the node's registry serves HTTPS on.", check=port)


@dataclass(frozen=True)
class Primary:
    port: int = setting(
        3001, "Port of the primary's Geo service (receives registry events).", check=port
    )
    registry: PrimaryRegistry = section(PrimaryRegistry, "The primary's registry.")


@dataclass(frozen=True)
class SecondaryRegistry:
    port: int = setting(5001, "Port the node's registry serves HTTPS on.", check=port)


@dataclass(frozen=True)
class RegistryReplication:
    enabled: bool = setting(True, "Replicate the primary registry to the secondary.")
    primary_api_url: str = setting(
        "",
        "Primary registry API URL; empty: https://<hostname>:<primary registry port>.",
        check=url_or_empty,
        effective=lambda cfg: cfg.primary_api_url,
    )
    backfill_interval: str = setting(
        "60s",
        "How often the worker compares the primary's catalog with what it has.",
        check=duration,
    )
    verification_interval: str = setting(
        "300s", "How often synced repositories are re-verified by checksum.", check=duration
    )
    max_concurrent_repositories: int = setting(4, "Repositories synced at once.", check=positive)
    max_concurrent_blobs: int = setting(4, "Blobs copied at once within one image.", check=positive)


@dataclass(frozen=True)
class Secondary:
    port: int = setting(
        3002, "Port of the secondary's Geo worker (health, status page).", check=port
    )
    registry: SecondaryRegistry = section(SecondaryRegistry, "The secondary's registry.")
    registry_replication: RegistryReplication = section(
        RegistryReplication, "How the secondary replicates the primary's registry."
    )


# A node of `geo.nodes`: its settings are a secondary's (a port, a registry, its own
# replication settings), whichever role it has now, so that its ports stay with it.
NodeSpec = Secondary


def node_name(value: str) -> str | None:
    ok = value == "" or _NAME.match(value)
    return None if ok else "empty (the first node) or a node name of `geo.nodes`, such as dc2"


@dataclass(frozen=True)
class Geo:
    primary: Primary = section(Primary, "The primary node.")
    secondary: Secondary = section(Secondary, "The secondary node.")
    # `geo.nodes.<name>`: any number of nodes by name, instead of `primary` and `secondary`.
    # A mapping of sections, so it is validated by config.py and not walked by `declared()`.
    nodes: dict[str, NodeSpec] = field(default_factory=dict, metadata={"nodes": True})
    primary_node: str = setting(
        "",
        "The node that starts as primary; empty: the first. Promotions are kept in roles.json.",
        check=node_name,
    )


@dataclass(frozen=True)
class Docker:
    container_prefix: str = setting(
        "gdk-geo",
        "Containers are named <prefix>-primary-registry and <prefix>-secondary-registry.",
        check=container_prefix,
    )


# Derived values.


def url_host(host: str) -> str:
    """`host` as it stands in a URL or a `host:port` address: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def url(scheme: str, host: str, port: int) -> str:
    """The one way a URL to a listener is written."""
    return f"{scheme}://{url_host(host)}:{port}"


NOTIFICATION_PATH = "/api/v4/container_registry_event/events"  # GitLab's, on the Geo service
REALM_PATH = "/jwt/auth"  # GitLab's token realm, on the Geo service
# How a registry container reaches the host's listeners (nodes.py maps the name).
CONTAINER_HOST = "host.docker.internal"


@dataclass(frozen=True)
class Node:
    """One node as the other parts see it: its ports, and the URLs they are reached at."""

    name: str
    is_primary: bool
    port: int  # the node's Geo service
    registry_port: int
    hostname: str
    key: str = ""  # where gdk.yml sets the node: `geo.primary` or `geo.nodes.<name>`

    @property
    def registry_address(self) -> str:
        """`host:port`, as `docker push` and `docker pull` name the registry."""
        return f"{url_host(self.hostname)}:{self.registry_port}"

    @property
    def registry_url(self) -> str:
        """HTTPS, at the host name: the node's TLS certificate names it."""
        return url("https", self.hostname, self.registry_port)

    @property
    def service_url(self) -> str:
        return url("http", self.hostname, self.port)

    @property
    def realm_url(self) -> str:
        """The token realm the node's registry advertises: its own Geo service's
        `/jwt/auth`, as GDK's realm is GitLab's."""
        return self.service_url + REALM_PATH

    @property
    def notification_url(self) -> str:
        """Where the node's registry sends its events: the Geo service, seen from the
        registry's container."""
        return url("http", CONTAINER_HOST, self.port) + NOTIFICATION_PATH

    @property
    def listeners(self) -> dict[str, int]:
        """The node's ports by the gdk.yml key that sets them (port errors name the key)."""
        key = self.key or f"geo.{self.name}"
        return {f"{key}.port": self.port, f"{key}.registry.port": self.registry_port}


NODE_NAMES = ("primary", "secondary")  # the nodes of the `geo.primary`/`geo.secondary` form


@dataclass(frozen=True)
class Settings:
    hostname: str = setting(
        "localhost",
        "Host name both nodes are reached at; the TLS certificate names it.",
        check=hostname,
    )
    listen_address: str = setting("127.0.0.1", "Address every listener binds.", check=ip_address)
    data_dir: str = setting(
        ".gdk-geo",
        "Node roots, secrets and certificates (relative to gdk.yml); a directory of its own.",
    )
    docker: Docker = section(Docker, "Docker containers.")
    registry: Registry = section(Registry, "The registry both nodes run.")
    geo: Geo = section(Geo, "The two Geo nodes.")

    @property
    def node_names(self) -> tuple[str, ...]:
        """Every node's name, in the order gdk.yml declares them (the first holds the
        certificate every node shares)."""
        return tuple(self.geo.nodes) or NODE_NAMES

    @property
    def primary_name(self) -> str:
        """The node that is primary: `geo.primary_node`, or the first node."""
        return self.geo.primary_node or self.node_names[0]

    def node_settings(self, name: str) -> Primary | Secondary:
        """The gdk.yml section of node `name` (its ports and replication settings)."""
        if name not in self.node_names:
            raise ValueError(f"no node {name!r}: the nodes are {', '.join(self.node_names)}")
        return self.geo.nodes[name] if self.geo.nodes else getattr(self.geo, name)

    def node(self, name: str) -> Node:
        """The derived values of node `name`."""
        settings = self.node_settings(name)
        key = f"geo.nodes.{name}" if self.geo.nodes else f"geo.{name}"
        is_primary = name == self.primary_name
        return Node(name, is_primary, settings.port, settings.registry.port, self.hostname, key)

    @property
    def nodes(self) -> tuple[Node, ...]:
        return tuple(self.node(name) for name in self.node_names)

    @property
    def primary(self) -> Node:
        return self.node(self.primary_name)

    @property
    def secondaries(self) -> tuple[Node, ...]:
        return tuple(node for node in self.nodes if not node.is_primary)

    def with_primary(self, name: str) -> Settings:
        """These settings with `name` as the primary (how recorded roles are applied)."""
        return replace(self, geo=replace(self.geo, primary_node=name))

    def replication(self, name: str) -> RegistryReplication:
        """How node `name` replicates while it is a secondary: its own section under
        `geo.nodes`, or `geo.secondary.registry_replication` in the two-node form."""
        spec = self.geo.nodes.get(name) if self.geo.nodes else self.geo.secondary
        return (spec or self.geo.secondary).registry_replication

    @property
    def listeners(self) -> dict[str, int]:
        """Every port the nodes listen on, by gdk.yml key."""
        return {key: port for node in self.nodes for key, port in node.listeners.items()}

    def primary_api_url_of(self, name: str) -> str:
        """The registry API URL secondary `name` syncs from: its setting when set by hand,
        else the current primary registry's own URL (it follows a promotion)."""
        configured = self.replication(name).primary_api_url
        return configured.rstrip("/") or self.primary.registry_url

    @property
    def primary_api_url(self) -> str:
        """The primary registry's API URL the (first) secondary syncs from."""
        first = self.secondaries[0].name if self.secondaries else "secondary"
        if first not in self.node_names:
            return self.primary.registry_url
        return self.primary_api_url_of(first)


# Walking the schema.


@dataclass(frozen=True)
class Declared:
    """One leaf setting as declared: its dotted key, Python type, default, doc and check."""

    key: str
    type: type
    default: Any
    doc: str
    check: Check | None
    effective: Effective | None = None

    def value_in(self, cfg: Settings) -> Any:
        """The value in use under `cfg`: derived values filled in."""
        if self.effective is not None:
            return self.effective(cfg)
        node: Any = cfg
        for part in self.key.split("."):
            node = getattr(node, part)
        return node


def _sections(cls: type) -> Iterator[tuple[str, type, Any]]:
    hints = get_type_hints(cls)
    for f in fields(cls):
        yield f.name, hints[f.name], f


def declared(cls: type = Settings, prefix: str = "") -> Iterator[Declared]:
    """Every leaf setting of `cls`, depth first, in declaration order."""
    for name, typ, f in _sections(cls):
        key = f"{prefix}{name}"
        if f.metadata.get("nodes"):
            continue  # `geo.nodes.<name>.*` is declared by its node type (config.py)
        if is_dataclass(typ):
            yield from declared(typ, key + ".")
        else:
            default = f.default if f.default is not MISSING else None
            meta = f.metadata
            yield Declared(key, typ, default, meta["doc"], meta["check"], meta["effective"])


def section_doc(cls: type, name: str) -> str:
    """The one-line doc of section `name` of dataclass `cls`."""
    return next(f.metadata["doc"] for f in fields(cls) if f.name == name)


DECLARED: dict[str, Declared] = {d.key: d for d in declared()}
