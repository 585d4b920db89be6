"""The secondary worker's HTTP face for machines: health, metrics, replication status.

Everything here reads one `StatusSnapshot` (`gdk_geo.secondary.snapshot`, taken by
`gdk_geo.secondary.worker.Worker.status`), so the JSON the `geo.status` task reads and the
Prometheus numbers can never disagree. The admin page and the worker API are
`gdk_geo.secondary.admin` and `gdk_geo.secondary.api`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gdk_geo.node.exposure import BEARER_CHALLENGE, Exposure
from gdk_geo.secondary.snapshot import ROW_SELECTIONS, Rows, StatusSnapshot

StatusSource = Callable[[Rows], StatusSnapshot]

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
    (
        "gdk_geo_rechecks_due",
        "Synced repositories due for backfill's re-check (they stay synced meanwhile).",
        lambda s: s.rechecks_due,
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
    """Prometheus metrics from a fresh snapshot at each scrape (counts, no rows)."""

    def __init__(self, status: StatusSource) -> None:
        self._status = status

    def collect(self) -> Iterator[Metric]:
        snapshot = self._status("none")
        yield _by_state(
            "gdk_geo_repositories",
            "Repositories in the tracking database, by state.",
            snapshot.counts,
        )
        yield _by_state(
            "gdk_geo_repositories_verification",
            "Repositories in the tracking database, by verification state.",
            snapshot.verification_counts,
        )
        for name, help_text, value_of in _GAUGES:
            yield GaugeMetricFamily(name, help_text, value=_number(value_of(snapshot)))
        for name, help_text, key in _COUNTERS:
            yield CounterMetricFamily(name, help_text, value=getattr(snapshot.totals, key))


def _by_state(name: str, help_text: str, counts: Mapping[str, int]) -> GaugeMetricFamily:
    """One gauge family with a `state` label: a sample per state, zeros included."""
    family = GaugeMetricFamily(name, help_text, labels=["state"])
    for state, count in counts.items():
        family.add_metric([state], count)
    return family


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


def create_app(status: StatusSource, exposure: Exposure | None = None) -> Starlette:
    """The ASGI app; `status` is called once per request for a fresh snapshot.

    `/-/health` and `/-/metrics` take it without rows. The status JSON carries the failing
    rows (what `geo.check` names) unless `?repositories=all` (every row, one per tracked
    repository) or `none` asks otherwise; the admin page and the worker API page through
    all of them.

    With an `exposure` beyond loopback (`gdk_geo.node.exposure`), `/-/metrics` and the
    status JSON need the node token, and `/-/health` without it says only that the worker
    is up; on loopback, or with no `exposure`, everyone gets everything, as before.
    """
    metrics_source = metrics_registry(status)

    def admitted(request: Request) -> bool:
        return exposure is None or exposure.admits(request.headers)

    async def health(request: Request) -> Response:
        if not admitted(request):
            return JSONResponse({"status": "ok", "node": "secondary"})
        snapshot = status("none")
        return JSONResponse(
            {
                "status": "ok",
                "node": "secondary",
                "cursor": snapshot.cursor,
                "replication_enabled": snapshot.replication_enabled,
            }
        )

    async def metrics(request: Request) -> Response:
        if not admitted(request):
            return _token_refused()
        return Response(generate_latest(metrics_source), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    async def replication_status(request: Request) -> Response:
        if not admitted(request):
            return _token_refused()
        rows = request.query_params.get("repositories", "failing")
        if rows not in ROW_SELECTIONS:
            message = f"repositories must be one of {', '.join(ROW_SELECTIONS)}"
            return JSONResponse({"message": message}, status_code=400)
        return JSONResponse(status(rows).to_json())  # type: ignore[arg-type]  # checked above

    return Starlette(
        routes=[
            Route("/-/health", health, methods=["GET"]),
            Route("/-/metrics", metrics, methods=["GET"]),
            Route("/api/v4/geo/replication/status", replication_status, methods=["GET"]),
        ]
    )


def _token_refused() -> Response:
    return JSONResponse(
        {"message": "401 Unauthorized: the node token is missing or wrong"},
        status_code=401,
        headers={"WWW-Authenticate": BEARER_CHALLENGE},
    )


def render_metrics(snapshot: StatusSnapshot) -> str:
    """The metrics of `snapshot` in Prometheus' text format (what /-/metrics serves)."""
    return generate_latest(metrics_registry(lambda rows: snapshot)).decode()
