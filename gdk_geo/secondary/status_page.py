"""The secondary worker's HTTP face: health, metrics, replication status, and an admin page.

Everything here reads one `StatusSnapshot` (`gdk_geo.secondary.snapshot`, taken by
`gdk_geo.secondary.worker.Worker.status`), so the JSON the `geo.status` task reads, the
Prometheus numbers and the HTML page can never disagree. The page
(`templates/admin/geo.html.j2`) is GitLab's Admin > Geo > Nodes in miniature: no external
assets, values escaped by Jinja's autoescape, and a two-second `<meta refresh>` so it
follows a push without any JavaScript.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gdk_geo.secondary.snapshot import StatusSnapshot

StatusSource = Callable[[], StatusSnapshot]

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"

_GAUGES: tuple[tuple[str, str, Callable[[StatusSnapshot], float | int | bool | None]], ...] = (
    (
        "gdk_geo_replication_enabled",
        "1 when registry replication is on.",
        lambda s: s.replication_enabled,
    ),
    ("gdk_geo_event_cursor", "Id of the last Geo event processed.", lambda s: s.cursor),
    (
        "gdk_geo_primary_last_event_id",
        "Id of the primary's newest Geo event, as last seen.",
        lambda s: s.primary_last_event_id,
    ),
    ("gdk_geo_event_lag", "Events the primary has that we have not read.", lambda s: s.lag),
    (
        "gdk_geo_last_event_age_seconds",
        "Seconds since the primary recorded the last event we processed.",
        lambda s: s.last_event_age_seconds,
    ),
)

_COUNTERS: tuple[tuple[str, str, str], ...] = (
    # (metric without _total, help, field of Totals)
    ("gdk_geo_syncs", "Repository syncs run.", "syncs"),
    ("gdk_geo_sync_failures", "Repository syncs failed.", "sync_failures"),
    ("gdk_geo_blobs_copied", "Blobs streamed.", "blobs_copied"),
    ("gdk_geo_blobs_mounted", "Blobs mounted.", "blobs_mounted"),
    ("gdk_geo_bytes_copied", "Blob bytes streamed.", "bytes_copied"),
    ("gdk_geo_tags_deleted", "Tags removed.", "tags_deleted"),
    (
        "gdk_geo_verification_mismatches",
        "Verifications that found the secondary differing from the primary.",
        "verification_mismatches",
    ),
)


class StatusCollector(Collector):
    """Prometheus metrics from a fresh snapshot at each scrape."""

    def __init__(self, status: StatusSource) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        snapshot = self._status()
        repositories = GaugeMetricFamily(
            "gdk_geo_repositories",
            "Repositories in the tracking database, by state.",
            labels=["state"],
        )
        for state, count in snapshot.counts.items():
            repositories.add_metric([state], count)
        yield repositories
        for name, help_text, value_of in _GAUGES:
            yield GaugeMetricFamily(name, help_text, value=_number(value_of(snapshot)))
        for name, help_text, key in _COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(snapshot.totals, key))


def _number(value: float | int | bool | None) -> float:
    """A gauge's value; NaN is Prometheus' way of saying "not known yet"."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return math.nan
    return float(value)


def metrics_registry(status: StatusSource) -> CollectorRegistry:
    """A registry of its own (not the process-wide default) holding the status collector."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    return registry


def create_app(status: StatusSource) -> Starlette:
    """The ASGI app; `status` is called once per request for a fresh snapshot."""
    metrics_source = metrics_registry(status)

    async def health(request: Request) -> Response:
        snapshot = status()
        return JSONResponse(
            {
                "status": "ok",
                "node": "secondary",
                "cursor": snapshot.cursor,
                "replication_enabled": snapshot.replication_enabled,
            }
        )

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(metrics_source), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def replication_status(request: Request) -> Response:
        return JSONResponse(status().to_json())

    async def admin(request: Request) -> Response:
        return HTMLResponse(render_admin_page(status()))

    return Starlette(
        routes=[
            Route("/-/health", health, methods=["GET"]),
            Route("/-/metrics", metrics, methods=["GET"]),
            Route("/api/v4/geo/replication/status", replication_status, methods=["GET"]),
            Route("/admin/geo", admin, methods=["GET"]),
        ]
    )


def render_metrics(snapshot: StatusSnapshot) -> str:
    """The metrics of `snapshot` in Prometheus' text format (what /-/metrics serves)."""
    return generate_latest(metrics_registry(lambda: snapshot)).decode()


def _when(timestamp: float | None, now: float) -> str:
    """A past or future time as "12s ago" / "in 3s" (the page is read by a human)."""
    if timestamp is None:
        return "—"
    delta = now - timestamp
    amount = abs(delta)
    if amount < 120:
        text = f"{amount:.0f}s"
    elif amount < 7200:
        text = f"{amount / 60:.0f}m"
    else:
        text = f"{amount / 3600:.1f}h"
    return f"{text} ago" if delta >= 0 else f"in {text}"


_ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENVIRONMENT.filters["when"] = _when


def render_admin_page(snapshot: StatusSnapshot, now: float | None = None) -> str:
    """The admin page as HTML; every value from the snapshot is escaped."""
    page = _ENVIRONMENT.get_template("admin/geo.html.j2")
    return page.render(s=snapshot, now=time.time() if now is None else now)
