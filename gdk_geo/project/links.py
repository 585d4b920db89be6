"""The links `geo.link` shapes, as the project records them, and the ways they route.

A shaped node gets a relay of its own: a process on this machine that carries every
connection between that node and the others, with the node's latency, loss, rate and
partition (`gdk_geo.link`). The record, `<data_dir>/links.json`, holds each shaped node's
shaping and the relay ports it was given. Like `roles.json`, it is state: a restart, a
promotion or a re-render keeps it until `geo.link --node N --reset`.

Each shaped node's relay has two kinds of route, both set up whatever the roles are, so
a promotion changes no route:
- `in:registry`, `in:service`: into the node (what the others send to it);
- `<other>:registry`, `<other>:service`: out of the node to each other node (what it sends
  to them), into that node's own relay when it is shaped too, so two shaped nodes' delays
  add up as two long links would.

The only connections between nodes are a secondary's to the primary's registry and Geo
service (a registry's notifications stay on its node), so `reach` is asked for those, and
the templates render the URL it gives.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.settings import Settings
from gdk_geo.settings.topology import ANY_ADDRESS, url

LINKS_FILE = "links.json"
KINDS = ("registry", "service")
Address = tuple[str, int]


@dataclass(frozen=True)
class NodeLink:
    """One shaped node: its shaping (as `gdk_geo.link.Shaping` writes it) and its relay's
    ports by route key."""

    shaping: dict[str, Any]
    ports: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Links:
    """Every shaped node's link; a node not in it has a plain one."""

    nodes: dict[str, NodeLink] = field(default_factory=dict)

    def shaped(self, node: str) -> bool:
        return node in self.nodes


def path(data_dir: Path) -> Path:
    return data_dir / LINKS_FILE


def read(data_dir: Path) -> Links:
    """The recorded links; none when there is no record (or one that is not ours)."""
    try:
        data = json.loads(path(data_dir).read_text())
    except (OSError, ValueError):
        return Links()
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, dict):
        return Links()
    return Links(
        {
            name: NodeLink(dict(entry.get("shaping") or {}), dict(entry.get("ports") or {}))
            for name, entry in nodes.items()
            if isinstance(entry, dict)
        }
    )


def write(data_dir: Path, links: Links) -> None:
    """Record `links` atomically (no record at all once no node is shaped)."""
    if not links.nodes:
        path(data_dir).unlink(missing_ok=True)
        return
    nodes = {
        name: {"shaping": link.shaping, "ports": link.ports} for name, link in links.nodes.items()
    }
    atomic_write(path(data_dir), json.dumps({"nodes": nodes}, indent=2, sort_keys=True) + "\n")


def relay_host(cfg: Settings) -> str:
    """The address the relays listen on: loopback when every node is on this machine, else
    the address the sites reach this machine at (a node here with an IP address that is
    not loopback: the TLS certificate names it)."""
    if not any(node.engine.is_remote for node in cfg.nodes):
        return "127.0.0.1"
    for node in cfg.nodes:
        if node.engine.is_remote:
            continue
        try:
            address = ipaddress.ip_address(node.hostname)
        except ValueError:
            continue
        if not address.is_loopback:
            return node.hostname
    raise GdkGeoError(
        "a shaped link relays through this machine, and no node here has an address the "
        "nodes on other engines reach it at",
        where="gdk.yml",
        fix="give a node on this machine's engine the address the sites reach this machine "
        "at (`address`, such as 198.18.0.1), then `invoke geo.setup`",
    )


def endpoint(cfg: Settings, node: str, kind: str) -> Address:
    """Where node `node`'s registry or Geo service listens, as a connection reaches it."""
    described = cfg.node(node)
    port = described.registry_port if kind == "registry" else described.port
    host = described.listen_address
    return (described.hostname if host == ANY_ADDRESS else host), port


def entry(cfg: Settings, links: Links, node: str, kind: str) -> Address:
    """Where a connection to node `node`'s `kind` goes in: its relay when it is shaped."""
    if links.shaped(node):
        return relay_host(cfg), links.nodes[node].ports[f"in:{kind}"]
    return endpoint(cfg, node, kind)


def _direct(cfg: Settings, target: str, kind: str) -> str:
    described = cfg.node(target)
    return described.registry_url if kind == "registry" else described.service_url


def first_hop(cfg: Settings, links: Links, source: str, target: str, kind: str) -> Address:
    """Where node `source`'s connections to node `target`'s `kind` go first: `source`'s
    relay when it is shaped, else where `target` is entered (its relay, or itself)."""
    if links.shaped(source):
        return relay_host(cfg), links.nodes[source].ports[f"{target}:{kind}"]
    return entry(cfg, links, target, kind)


def reach(cfg: Settings, links: Links, source: str, target: str, kind: str) -> str:
    """The URL node `source` reaches node `target`'s registry or Geo service at: through
    the relays on the way (`first_hop`), else directly, by name (and always directly to
    itself)."""
    if source == target or not (links.shaped(source) or links.shaped(target)):
        return _direct(cfg, target, kind)
    host, port = first_hop(cfg, links, source, target, kind)
    return url("https" if kind == "registry" else "http", host, port)


def route_keys(cfg: Settings, node: str) -> list[str]:
    """The routes node `node`'s relay serves, by key."""
    others = [other for other in cfg.node_names if other != node]
    return [f"in:{kind}" for kind in KINDS] + [f"{o}:{kind}" for o in others for kind in KINDS]


def routes(cfg: Settings, links: Links, node: str) -> list[tuple[Address, Address]]:
    """Node `node`'s relay routes: (listen, target) for each key."""
    host, ports = relay_host(cfg), links.nodes[node].ports
    found = []
    for key in route_keys(cfg, node):
        other, kind = key.split(":")
        target = endpoint(cfg, node, kind) if other == "in" else entry(cfg, links, other, kind)
        found.append(((host, ports[key]), target))
    return found


def with_ports(cfg: Settings, link: NodeLink, node: str, taken: Iterable[int]) -> NodeLink:
    """`link` with a relay port for each of node `node`'s routes (kept where it has one)."""
    ports = dict(link.ports)
    held = set(taken) | set(ports.values())
    for key in route_keys(cfg, node):
        if key not in ports:
            ports[key] = _free_port(relay_host(cfg), held)
            held.add(ports[key])
    return NodeLink(link.shaping, ports)


def _free_port(host: str, taken: set[int]) -> int:
    """A port nothing listens on at `host` now, and none of `taken`."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind((host, 0))
            port = probe.getsockname()[1]
        if port not in taken:
            return port
    raise GdkGeoError(f"no free port for a link relay on {host}")
