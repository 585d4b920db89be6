"""`geo.status`: one report of every node, as a rich table for people or JSON for scripts.

Each secondary has a worker of its own, so each secondary's entry carries its own
`replication` (the worker's counts, cursor and lag, or None when it does not answer).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import node_token_of
from gdk_geo.ops import link
from gdk_geo.pki import certs
from gdk_geo.project import Project, roles
from gdk_geo.registry import http
from gdk_geo.runtime import containers, health, services
from gdk_geo.runtime.placement import Placement
from gdk_geo.secondary.snapshot import StatusSnapshot
from gdk_geo.settings import Settings


def _container(client: Any, cfg: Settings, node: str, project_root: Path) -> dict[str, Any]:
    name = containers.container_name(cfg, node)
    container = containers.find(client, name) if client else None
    owner = container.labels.get(containers.LABEL_PROJECT) if container is not None else None
    if container is not None and owner != str(project_root):
        return {"name": name, "state": f"belongs to another project ({owner or 'not gdk-geo'})"}
    if container is None:
        return {"name": name, "state": "absent" if client else "unknown (engine does not answer)"}
    started = containers.started_at(container)
    running = container.status == "running"
    uptime = (datetime.now(UTC) - started).total_seconds() if started and running else None
    return {
        "name": name,
        "state": container.status,
        "image": container.attrs["Config"]["Image"],
        "started_at": started.isoformat() if started else None,
        "uptime_seconds": round(uptime, 1) if uptime is not None else None,
    }


def _certificate(project: Project, cfg: Settings, node: str) -> dict[str, Any]:
    path = project.node(cfg, node).certificate
    try:
        info = certs.certificate_info(path)
    except (GdkGeoError, FileNotFoundError, OSError):
        return {"path": str(path), "present": False}
    days = (info.not_after - datetime.now(UTC)).days
    return {
        "path": str(path),
        "present": True,
        "not_after": info.not_after.isoformat(),
        "days_left": days,
        "fingerprint": info.fingerprint,
    }


def _replication(service_url: str, node_token: str) -> dict[str, Any] | None:
    """A secondary worker's own view of replication (counts, cursor, lag); the node token
    opens it on a worker beyond loopback."""
    url = f"{service_url}/api/v4/geo/replication/status"
    headers = {"Authorization": f"Bearer {node_token}"} if node_token else None
    try:
        with http.httpx_client(timeout=2.0, headers=headers) as client:
            response = client.get(url)
        response.raise_for_status()
        data = StatusSnapshot.from_json(response.json()).to_json()
    except (httpx.HTTPError, ValueError):
        return None
    data.pop("repositories")  # per-repository rows belong on the status page
    return data


def collect(project: Project) -> dict[str, Any]:
    """Everything `geo.status` shows, as plain data."""
    cfg = project.load()
    place = Placement(project, cfg)
    report: dict[str, Any] = {"primary": cfg.primary_name, "nodes": {}}
    fenced = roles.current(cfg, project.data_dir(cfg)).fenced
    shaped = {state.node: state for state in link.states(project, cfg, measure=False)}
    for paths in project.nodes(cfg):
        node = paths.name
        registry_url = cfg.node(node).registry_url
        service_url = cfg.node(node).service_url
        client, engine = _engine(place, node)
        service = _service(place, node, client)
        registry_probe = health.probe_registry(registry_url, paths.certificate, timeout=1.0)
        service_probe = health.probe_service(service_url, timeout=1.0)
        is_primary = cfg.node(node).is_primary
        report["nodes"][node] = {
            "role": _role(is_primary, node in fenced),
            "engine": engine,
            "link": _link(shaped[node]),
            "container": _container(client, cfg, node, project.root),
            "registry": {
                "url": registry_url,
                "healthy": registry_probe.ok,
                "detail": registry_probe.detail,
            },
            "service": {"url": service_url, **service, "healthy": service_probe.ok},
            "certificate": _certificate(project, cfg, node),
        }
        if not is_primary:
            token = node_token_of(paths.gitlab_yml)
            report["nodes"][node]["replication"] = _replication(service_url, token)
    return report


def _link(state: link.LinkState) -> dict[str, Any]:
    """A node's link as `geo.link` shaped it: its shaping, and its relay's pid."""
    return {"shaping": state.described, "down": state.shaping.down, "relay_pid": state.relay_pid}


def _engine(place: Placement, node: str) -> tuple[Any, dict[str, Any]]:
    """Node `node`'s engine client (None when it does not answer), and how it is shown."""
    shown = {"host": place.engine_label(node), "answers": True}
    try:
        return place.client(node), shown
    except GdkGeoError as exc:
        return None, {**shown, "answers": False, "error": exc.what}


def _service(place: Placement, node: str, client: Any) -> dict[str, Any]:
    """Whether `node`'s Geo service runs: a local process (its pid), or a container on the
    node's engine (its name)."""
    if place.is_remote(node):
        name = place.names(node).service
        running = client is not None and place.service_running(node)
        return {"container": name, "pid": None, "running": running, "stale_pidfile": False}
    state = services.state(place.paths(node))
    pid = state.pid if state.running else None
    return {"pid": pid, "running": state.running, "stale_pidfile": state.stale}


def _role(is_primary: bool, fenced: bool) -> str:
    """A node's role in words: a fenced node (a forced promotion's old primary) is not a
    plain secondary: it is read-only and does not sync until `geo.reconcile`."""
    if is_primary:
        return "primary"
    return "fenced" if fenced else "secondary"


def _mark(ok: bool) -> str:
    return "[green]✓[/]" if ok else "[red]✗[/]"


def _uptime(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _port(url: str) -> str:
    return ":" + url.rsplit(":", 1)[-1]


def print_table(report: dict[str, Any], console: Console) -> None:
    table = Table(title="gdk-geo nodes", title_justify="left")
    for column in ("node", "engine", "link", "container", "registry", "Geo service", "cert"):
        table.add_column(column, no_wrap=True)
    images = set()
    for node, info in report["nodes"].items():
        container, registry, service, cert = (
            info["container"],
            info["registry"],
            info["service"],
            info["certificate"],
        )
        images.add(container.get("image", "-"))
        role = info.get("role", node)
        table.add_row(
            node if role == node else f"{node} ({role})",
            _engine_cell(info["engine"]),
            escape(info["link"]["shaping"]),
            f"{container['state']} {_uptime(container.get('uptime_seconds'))}",
            f"{_mark(registry['healthy'])} {_port(registry['url'])}",
            f"{_mark(service['healthy'])} {_port(service['url'])} {_runs_as(service)}",
            f"{cert['days_left']} days" if cert.get("present") else "missing",
        )
    console.print(table)
    console.print("image: " + ", ".join(sorted(images)))
    for node, info in report["nodes"].items():
        if info.get("role") == "secondary":
            console.print(f"replication to {node}: {_replication_line(info.get('replication'))}")
        elif info.get("role") == "fenced":
            console.print(
                f"{node} is fenced: read-only and not syncing; `invoke geo.reconcile --node "
                f"{node}` lists what it holds that {report['primary']} lacks",
                markup=False,
            )


def _engine_cell(engine: dict[str, Any]) -> str:
    host = escape(engine["host"])
    return host if engine["answers"] else f"[red]✗[/] {host}"


def _runs_as(service: dict[str, Any]) -> str:
    """A local service by its pid, one on another engine as a container."""
    return "container" if "container" in service else f"pid {service['pid'] or '-'}"


def _replication_line(replication: dict[str, Any] | None) -> str:
    """One secondary's replication in a line: its counts, cursor, lag and last event."""
    if replication is None:
        return "its Geo worker does not answer"
    status = StatusSnapshot.from_json(replication)
    return (
        ", ".join(
            f"{state} {status.counts.get(state, 0)}"
            for state in ("synced", "pending", "started", "failed")
        )
        + f"; {status.rechecks_due} re-checks due"
        + f"; cursor {status.cursor}, lag {status.lag} events"
        + (
            f", last event {status.last_event_age_seconds:.0f}s ago"
            if status.last_event_age_seconds is not None
            else ""
        )
    )
