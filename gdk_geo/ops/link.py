"""What `geo.link` does: shape a node's link, show every link, and keep the relays running.

Shaping node N's link for the first time gives N a relay (`gdk_geo.link`) and re-renders
the nodes whose URLs now lead through it; `geo.setup` then restarts only the services whose
gitlab.yml changed. Changing the shaping of a link that has a relay only rewrites the
relay's spec: open connections go on under the new shaping, and nothing restarts. `--reset`
forgets the record, renders the direct URLs again and restarts the services that used the
relay, then stops it: nothing of the link is left, no relay process, no spec, no record.

The relays are part of what a project runs: `geo.setup` and `geo.restart` start the ones the
record asks for, `geo.stop` and `geo.destroy` stop them.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from gdk_geo.errors import GdkGeoError
from gdk_geo.link import probe, process
from gdk_geo.link.shaping import Shaping
from gdk_geo.link.spec import LinkSpec, Route, write_spec
from gdk_geo.project import Project, links
from gdk_geo.settings import Settings

Say = Callable[[str], None]
RELAYS_DIR = "links"


@dataclass(frozen=True)
class RelayFiles:
    """Where node `node`'s relay keeps its spec, pid, log and counters."""

    root: Path

    @property
    def spec(self) -> Path:
        return self.root / "relay.json"

    @property
    def pidfile(self) -> Path:
        return self.root / "relay.pid"

    @property
    def log(self) -> Path:
        return self.root / "relay.log"

    @property
    def stats(self) -> Path:
        return self.root / "stats.json"


def relay_files(project: Project, cfg: Settings, node: str) -> RelayFiles:
    return RelayFiles(project.data_dir(cfg) / RELAYS_DIR / node)


def shaping_of(recorded: links.Links, node: str) -> Shaping:
    """Node `node`'s shaping as recorded (a perfect link when it has none)."""
    link = recorded.nodes.get(node)
    return Shaping.from_json(link.shaping) if link else Shaping()


def _spec(cfg: Settings, recorded: links.Links, node: str) -> LinkSpec:
    routes = tuple(Route(listen, target) for listen, target in links.routes(cfg, recorded, node))
    return LinkSpec(routes, shaping_of(recorded, node))


def ensure_relays(project: Project, cfg: Settings) -> list[str]:
    """Start (or bring up to date) the relay of every shaped node; the nodes whose relay
    was started now. A relay's spec follows the record and the settings (a node whose port
    moved is reached at its new one)."""
    recorded = links.read(project.data_dir(cfg))
    started = []
    for node in recorded.nodes:
        files = relay_files(project, cfg, node)
        files.root.mkdir(parents=True, exist_ok=True)
        write_spec(files.spec, _spec(cfg, recorded, node))
        if process.running(files.pidfile, files.spec) is None:
            process.start(files.spec, files.pidfile, files.log, stats_path=files.stats)
            started.append(node)
    return started


def stop_relays(project: Project, cfg: Settings, *, forget: bool = False) -> list[str]:
    """Stop every relay of the project (and with `forget`, remove their files and the
    record); the nodes whose relay was running."""
    data_dir = project.data_dir(cfg)
    stopped = []
    relays = data_dir / RELAYS_DIR
    for root in sorted(relays.iterdir()) if relays.is_dir() else ():
        files = RelayFiles(root)
        if process.stop(files.pidfile, files.spec):
            stopped.append(root.name)
    if forget:
        shutil.rmtree(relays, ignore_errors=True)
        links.write(data_dir, links.Links())
    return stopped


def _taken(cfg: Settings, recorded: links.Links) -> set[int]:
    """Ports a new relay route must not take: every listener's and every relay's."""
    held = set(cfg.listeners.values())
    for link in recorded.nodes.values():
        held |= set(link.ports.values())
    return held


def shape(project: Project, cfg: Settings, node: str, shaping: Shaping) -> bool:
    """Give node `node`'s link `shaping` (recorded, played by its relay). True when the
    node's link was plain until now: the caller re-renders and converges the nodes."""
    if node not in cfg.node_names:
        raise GdkGeoError(
            f"no node {node!r}",
            where="invoke geo.link --node",
            fix=f"use one of: {', '.join(cfg.node_names)}",
        )
    data_dir = project.data_dir(cfg)
    recorded = links.read(data_dir)
    first = not recorded.shaped(node)
    link = recorded.nodes.get(node) or links.NodeLink({})
    link = links.with_ports(
        cfg, replace(link, shaping=shaping.to_json()), node, _taken(cfg, recorded)
    )
    recorded = links.Links({**recorded.nodes, node: link})
    links.write(data_dir, recorded)
    ensure_relays(project, cfg)
    return first


def forget(project: Project, cfg: Settings, node: str) -> bool:
    """Take node `node`'s shaping out of the record (its relay goes on meanwhile, so the
    services still using it are not cut off before they restart). True when it had one:
    the caller renders the direct URLs again, then `remove_relay`."""
    data_dir = project.data_dir(cfg)
    recorded = links.read(data_dir)
    if not recorded.shaped(node):
        return False
    left = {name: link for name, link in recorded.nodes.items() if name != node}
    links.write(data_dir, links.Links(left))
    ensure_relays(project, cfg)  # a relay that led into this node's now leads to it directly
    return True


def remove_relay(project: Project, cfg: Settings, node: str) -> None:
    """Stop node `node`'s relay and remove its files: nothing of the link is left."""
    files = relay_files(project, cfg, node)
    process.stop(files.pidfile, files.spec)
    shutil.rmtree(files.root, ignore_errors=True)


@dataclass(frozen=True)
class LinkState:
    """One node's link as `geo.link`, `geo.status` and `geo.check` show it."""

    node: str
    shaping: Shaping
    relay_pid: int | None  # None: no relay (a plain link), or one that is not running
    shaped: bool
    round_trip_ms: float | None  # to the primary's Geo service, the way the node goes
    is_primary: bool = False

    @property
    def described(self) -> str:
        return self.shaping.describe() if self.shaped else "plain"


def states(project: Project, cfg: Settings, *, measure: bool = True) -> list[LinkState]:
    """Every node's link, and (with `measure`) the round trip from it to the primary."""
    recorded = links.read(project.data_dir(cfg))
    found = []
    for node in cfg.node_names:
        files = relay_files(project, cfg, node)
        pid = process.running(files.pidfile, files.spec) if recorded.shaped(node) else None
        rtt = _round_trip(cfg, recorded, node) if measure else None
        shaping, shaped = shaping_of(recorded, node), recorded.shaped(node)
        found.append(LinkState(node, shaping, pid, shaped, rtt, node == cfg.primary_name))
    return found


def _round_trip(cfg: Settings, recorded: links.Links, node: str) -> float | None:
    """The round trip from `node` to the primary's Geo service, along the path the node's
    own connections take (through the relays); None for the primary itself, or no answer."""
    primary = cfg.primary_name
    if node == primary:
        return None
    host, port = links.first_hop(cfg, recorded, node, primary, "service")
    return probe.round_trip_ms(host, port, timeout=3.0)
