"""Where each node is reached: its URLs and listeners, and which node a registry URL names.

`Node` holds the values that follow from one node's settings (`Settings.node(name)` builds
it), so a URL to a listener is written here and nowhere else, as GDK's `config.rb`
declares its derived values beside the settings. This module knows nothing of gdk.yml's
schema: the settings use it, never the other way round.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

NOTIFICATION_PATH = "/api/v4/container_registry_event/events"  # GitLab's, on the Geo service
REALM_PATH = "/jwt/auth"  # GitLab's token realm, on the Geo service
# How a registry container reaches the host's listeners (nodes.py maps the name).
CONTAINER_HOST = "host.docker.internal"
# Names that reach a listener on this machine whatever `hostname` says.
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


def url_host(host: str) -> str:
    """`host` as it stands in a URL or a `host:port` address: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host


def url(scheme: str, host: str, port: int) -> str:
    """The one way a URL to a listener is written."""
    return f"{scheme}://{url_host(host)}:{port}"


ANY_ADDRESS = "0.0.0.0"  # what a node reached by a host name binds: that name's address


def listen_address_of(address: str, listen_address: str) -> str:
    """What a node's listeners bind: its `address` when it is an IP address (a node on
    another machine listens where the others reach it), every address when it is a name,
    and the project's `listen_address` when it has none (loopback by default)."""
    if not address:
        return listen_address
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return ANY_ADDRESS
    return address


@dataclass(frozen=True)
class Engine:
    """The Docker engine a node runs on, as its `docker` settings name it; `host` empty:
    the engine the CLI finds by itself ($DOCKER_HOST, the default socket)."""

    host: str = ""
    tls_verify: bool = False
    cert_path: str = ""

    @property
    def is_remote(self) -> bool:
        """Whether the node's engine is one of its own: nothing is bind-mounted from this
        machine into it, and the node's Geo service runs there as a container."""
        return bool(self.host)

    @property
    def label(self) -> str:
        """The engine in words, for `geo.status` and errors."""
        return self.host or "local engine"


@dataclass(frozen=True)
class Node:
    """One node as the other parts see it: its ports, and the URLs they are reached at."""

    name: str
    is_primary: bool
    port: int  # the node's Geo service
    registry_port: int
    hostname: str  # where the other nodes and the CLI reach it: its `address`, or `hostname`
    key: str = ""  # where gdk.yml sets the node: `geo.primary` or `geo.nodes.<name>`
    listen_address: str = "127.0.0.1"  # what its registry and Geo service bind
    engine: Engine = field(default_factory=Engine)

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


# Which of our registries a URL names.


def same_registry(url_text: str, other: str, local: frozenset[str] = LOCAL_HOSTS) -> bool:
    """Whether two registry URLs name one registry: the same port, and the same host or
    two names in `local` (scheme aside: a registry serves one port one way)."""
    first, second = urlsplit(url_text), urlsplit(other)
    try:
        same_port = first.port == second.port
    except ValueError:
        return False
    hosts = {first.hostname, second.hostname}
    return same_port and (len(hosts) == 1 or hosts <= local)


@dataclass(frozen=True)
class Aim:
    """Where a registry URL leads among the project's nodes."""

    url: str
    scheme: str
    port: int | None  # None: the URL names no port (or one that cannot be)
    node: Node | None  # the node whose registry listens there; None: nothing of ours

    @property
    def is_primary_registry(self) -> bool:
        """https, a local name, the primary registry's port: what a secondary syncs from."""
        return self.node is not None and self.node.is_primary and self.scheme == "https"


def aim_of(url_text: str, nodes: Iterable[Node], local: frozenset[str]) -> Aim:
    """Which of `nodes`' registries `url_text` reaches; `local`: the names that reach this
    machine. Every listener binds `listen_address`, so any local name with a registry's
    port reaches that registry."""
    parts = urlsplit(url_text)
    try:
        port = parts.port
    except ValueError:
        port = None
    node = next((n for n in nodes if same_registry(url_text, n.registry_url, local)), None)
    return Aim(url_text, parts.scheme, port, node)
