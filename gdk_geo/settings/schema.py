"""Every gdk.yml setting, declared once: its type, default and one line of documentation.

The nested dataclasses below are the whole schema. Validation (`config.py`), the committed
`gdk.example.yml` and the settings table of docs/settings.md are all derived from them, the
way GDK derives `gdk.example.yml` from `lib/gdk/config.rb`. To add a setting, add a field
here (docs/recipes.md has the other steps).

The values that follow from the settings (each node's registry and Geo service URL, the
listeners, the effective primary API URL) are reached from `Settings` (`cfg.node(name)`,
`cfg.listeners`, `cfg.primary_api_url`), as GDK's `config.rb` declares its derived values;
`topology.py` builds them, so the templates, the tasks, the checks and the tests read one
URL built in one place.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from gdk_geo.settings.topology import LOCAL_HOSTS, Aim, Engine, Node, aim_of, listen_address_of
from gdk_geo.settings.values import (
    Check,
    container_prefix,
    docker_host,
    duration,
    hostname,
    image_name,
    ip_address,
    log_level,
    node_address,
    node_name,
    port,
    positive,
    secret,
    url_or_empty,
    username,
)

# The value in use, when it follows from others: of node `name`'s section of `geo.nodes`,
# or ("") of the setting as the two-node form declares it.
Effective = Callable[["Settings", str], Any]


def setting(
    default: Any, doc: str, *, check: Check | None = None, effective: Effective | None = None
) -> Any:
    """Declare one setting: its default, a one-line description, an optional check, and,
    for a setting whose empty value means "derive it", how its effective value follows."""
    return field(default=default, metadata={"doc": doc, "check": check, "effective": effective})


def section(default: Callable[[], Any], doc: str) -> Any:
    """Declare a nested section (a dataclass of settings); `default` makes its defaults,
    the class itself or, where one class serves twice, a `partial` of it."""
    return field(default_factory=default, metadata={"doc": doc, "check": None, "effective": None})


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
        "User that may log in to every registry (pull only on secondaries).",
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
    image: str = setting("registry:2", "Registry image every node runs.", check=image_name)
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
class NodeRegistry:
    port: int = setting(5000, "Port the node's registry serves HTTPS on.", check=port)


@dataclass(frozen=True)
class NodeEngine:
    host: str = setting(
        "",
        "The node's Docker engine as DOCKER_HOST spells it (unix://, tcp://, ssh://); "
        "empty: the CLI's own.",
        check=docker_host,
    )
    tls_verify: bool = setting(
        False, "Use TLS to a tcp:// engine and verify it (also on with $DOCKER_TLS_VERIFY)."
    )
    cert_path: str = setting(
        "", "ca.pem, cert.pem and key.pem for a tcp:// engine; empty: $DOCKER_CERT_PATH."
    )


NODE_ADDRESS_DOC = (
    "Address the other nodes and the CLI reach this node at; empty: `hostname`. "
    "Required with `docker.host`."
)


@dataclass(frozen=True)
class Primary:
    port: int = setting(
        3001, "Port of the primary's Geo service (receives registry events).", check=port
    )
    registry: NodeRegistry = section(NodeRegistry, "The primary's registry.")
    address: str = setting("", NODE_ADDRESS_DOC, check=node_address)
    docker: NodeEngine = section(NodeEngine, "Where the node runs: its Docker engine.")


@dataclass(frozen=True)
class RegistryReplication:
    enabled: bool = setting(
        True, "Replicate the primary registry to this node while it is a secondary."
    )
    primary_api_url: str = setting(
        "",
        "Primary registry API URL; empty: https://<hostname>:<primary registry port>.",
        check=url_or_empty,
        effective=lambda cfg, node: cfg.primary_api_url_of(node) if node else cfg.primary_api_url,
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
    registry: NodeRegistry = section(partial(NodeRegistry, 5001), "The secondary's registry.")
    registry_replication: RegistryReplication = section(
        RegistryReplication, "How the secondary replicates the primary's registry."
    )
    address: str = setting("", NODE_ADDRESS_DOC, check=node_address)
    docker: NodeEngine = section(NodeEngine, "Where the node runs: its Docker engine.")


# A node of `geo.nodes`: its settings are a secondary's (a port, a registry, its own
# replication settings), whichever role it has now, so that its ports stay with it.
NodeSpec = Secondary
NODE_SPEC_KEY = "geo.secondary."  # where the settings of a node of `geo.nodes` are declared
NODE_NAMES = ("primary", "secondary")  # the nodes of the `geo.primary`/`geo.secondary` form
REPLICATION_KEY = "geo.secondary.registry_replication"  # both nodes' in that form


@dataclass(frozen=True)
class Member:
    """One node as gdk.yml declares it, in whichever form: its section and where it is."""

    name: str
    key: str  # the gdk.yml key of its section: `geo.primary` or `geo.nodes.<name>`
    spec: Primary | Secondary  # its ports
    replication: RegistryReplication  # how it replicates while it is a secondary
    replication_key: str = ""  # the gdk.yml key of that section; "": its own (`key`'s)

    @property
    def api_url_key(self) -> str:
        """The gdk.yml key of the primary_api_url this node syncs from as a secondary."""
        return f"{self.replication_key or self.key + '.registry_replication'}.primary_api_url"


@dataclass(frozen=True)
class Layout:
    """Every node in declaration order (the first holds the certificate every node
    shares), and the name of the one that is primary."""

    members: tuple[Member, ...]
    primary: str

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(member.name for member in self.members)

    @property
    def secondaries(self) -> tuple[Member, ...]:
        """The nodes that replicate the primary now."""
        return tuple(member for member in self.members if member.name != self.primary)

    def member(self, name: str) -> Member:
        """Node `name`'s declaration; an unknown name is a mistake of the caller's."""
        for member in self.members:
            if member.name == name:
                return member
        raise ValueError(f"no node {name!r}: the nodes are {', '.join(self.names)}")


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

    def layout(self) -> Layout:
        """The nodes of either form, and the primary: `primary_node`, or the first node.
        The one place that reads the form: in `geo.primary`/`geo.secondary` both nodes
        replicate with `geo.secondary.registry_replication`, whichever is the secondary
        now; a node of `geo.nodes` has a section of its own."""
        if self.nodes:
            members = tuple(
                Member(name, f"geo.nodes.{name}", spec, spec.registry_replication)
                for name, spec in self.nodes.items()
            )
        else:
            shared = self.secondary.registry_replication
            members = tuple(
                Member(name, f"geo.{name}", getattr(self, name), shared, REPLICATION_KEY)
                for name in NODE_NAMES
            )
        return Layout(members, self.primary_node or members[0].name)


@dataclass(frozen=True)
class Docker:
    container_prefix: str = setting(
        "gdk-geo",
        "Containers are named <prefix>-primary-registry and <prefix>-secondary-registry.",
        check=container_prefix,
    )


def registry_container_name(prefix: str, node: str) -> str:
    """The name of node `node`'s registry container under `prefix`: the one spelling, for
    the containers gdk.yml asks for and for those a record names."""
    return f"{prefix}-{node}-registry"


@dataclass(frozen=True)
class Settings:
    hostname: str = setting(
        "localhost",
        "Host name every node is reached at; the TLS certificate names it.",
        check=hostname,
    )
    listen_address: str = setting("127.0.0.1", "Address every listener binds.", check=ip_address)
    data_dir: str = setting(
        ".gdk-geo",
        "Node roots, secrets and certificates (relative to gdk.yml); a directory of its own.",
    )
    docker: Docker = section(Docker, "Docker containers.")
    registry: Registry = section(Registry, "The registry every node runs.")
    geo: Geo = section(Geo, "The two Geo nodes.")

    @property
    def layout(self) -> Layout:
        """The nodes, in either form of gdk.yml, and which one is primary."""
        return self.geo.layout()

    @property
    def node_names(self) -> tuple[str, ...]:
        """Every node's name, in the order gdk.yml declares them (the first holds the
        certificate every node shares)."""
        return self.layout.names

    @property
    def primary_name(self) -> str:
        """The node that is primary: `geo.primary_node`, or the first node."""
        return self.layout.primary

    def node(self, name: str) -> Node:
        """The derived values of node `name`."""
        layout = self.layout
        member = layout.member(name)
        is_primary = name == layout.primary
        spec = member.spec
        engine = Engine(spec.docker.host, spec.docker.tls_verify, spec.docker.cert_path)
        return Node(
            name,
            is_primary,
            spec.port,
            spec.registry.port,
            spec.address or self.hostname,
            member.key,
            listen_address=listen_address_of(spec.address, self.listen_address),
            engine=engine,
        )

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
        """How node `name` replicates while it is a secondary."""
        return self.layout.member(name).replication

    @property
    def listeners(self) -> dict[str, int]:
        """Every port the nodes listen on, by gdk.yml key."""
        return {key: port for node in self.nodes for key, port in node.listeners.items()}

    @property
    def local_listeners(self) -> dict[str, tuple[str, int]]:
        """The listeners of the nodes on this machine's engine, by gdk.yml key, with the
        address each binds: the ones whose port this machine can check."""
        return {
            key: (node.listen_address, port)
            for node in self.nodes
            if not node.engine.is_remote
            for key, port in node.listeners.items()
        }

    def primary_api_url_of(self, name: str) -> str:
        """The registry API URL secondary `name` syncs from: its setting when set by hand,
        else the current primary registry's own URL (it follows a promotion)."""
        configured = self.replication(name).primary_api_url
        return configured.rstrip("/") or self.primary.registry_url

    def aim_of(self, url_text: str) -> Aim:
        """Which node's registry `url_text` reaches (a local name and a registry's port)."""
        local = {self.hostname, self.listen_address}
        local |= {node.hostname for node in self.nodes if not node.engine.is_remote}
        return aim_of(url_text, self.nodes, LOCAL_HOSTS | local)

    @property
    def primary_api_url(self) -> str:
        """The primary registry's API URL the (first) secondary syncs from."""
        if not self.secondaries:
            return self.primary.registry_url
        return self.primary_api_url_of(self.secondaries[0].name)
