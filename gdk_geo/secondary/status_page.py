"""The secondary worker's HTTP face: health, metrics, replication status, and an admin page.

Everything here reads one status snapshot (a plain dict built by the worker, see
`gdk_geo.secondary.worker.Worker.status`), so the JSON the `geo.status` task reads, the Prometheus
numbers and the HTML page can never disagree. The page is GitLab's Admin > Geo > Nodes in
miniature: no external assets, values escaped by jinja2's autoescape, and a two-second
`<meta refresh>` so it follows a push without any JavaScript.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from jinja2 import Environment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

Status = dict[str, Any]
StatusSource = Callable[[], Status]

_METRICS: tuple[tuple[str, str, str, str], ...] = (
    # (metric, type, help, dotted key in the snapshot)
    (
        "gdk_geo_replication_enabled",
        "gauge",
        "1 when registry replication is on.",
        "replication_enabled",
    ),
    ("gdk_geo_event_cursor", "gauge", "Id of the last Geo event processed.", "cursor"),
    (
        "gdk_geo_primary_last_event_id",
        "gauge",
        "Id of the primary's newest Geo event, as last seen.",
        "primary_last_event_id",
    ),
    ("gdk_geo_event_lag", "gauge", "Events the primary has that we have not read.", "lag"),
    (
        "gdk_geo_last_event_age_seconds",
        "gauge",
        "Seconds since the primary recorded the last event we processed.",
        "last_event_age_seconds",
    ),
    ("gdk_geo_syncs_total", "counter", "Repository syncs run.", "totals.syncs"),
    ("gdk_geo_sync_failures_total", "counter", "Repository syncs failed.", "totals.sync_failures"),
    ("gdk_geo_blobs_copied_total", "counter", "Blobs streamed.", "totals.blobs_copied"),
    ("gdk_geo_blobs_mounted_total", "counter", "Blobs mounted.", "totals.blobs_mounted"),
    ("gdk_geo_bytes_copied_total", "counter", "Blob bytes streamed.", "totals.bytes_copied"),
    ("gdk_geo_tags_deleted_total", "counter", "Tags removed.", "totals.tags_deleted"),
    (
        "gdk_geo_verification_mismatches_total",
        "counter",
        "Verifications that found the secondary differing from the primary.",
        "totals.verification_mismatches",
    ),
)


def create_app(status: StatusSource) -> Starlette:
    """The ASGI app; `status` is called once per request for a fresh snapshot."""

    async def health(request: Request) -> Response:
        snapshot = status()
        return JSONResponse(
            {
                "status": "ok",
                "node": "secondary",
                "cursor": snapshot["cursor"],
                "replication_enabled": snapshot["replication_enabled"],
            }
        )

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(render_metrics(status()), media_type="text/plain; version=0.0.4")

    async def replication_status(request: Request) -> Response:
        return JSONResponse(status())

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


def _lookup(snapshot: Status, dotted: str) -> Any:
    value: Any = snapshot
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _number(value: Any) -> str:
    if value is None:
        return "NaN"  # Prometheus' way of saying "not known yet"
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN"
    return f"{value:g}" if isinstance(value, float) else str(value)


def render_metrics(snapshot: Status) -> str:
    """Prometheus' text exposition format, by hand: a dozen numbers need no library."""
    lines = [
        "# HELP gdk_geo_repositories Repositories in the tracking database, by state.",
        "# TYPE gdk_geo_repositories gauge",
    ]
    for state, count in snapshot["counts"].items():
        lines.append(f'gdk_geo_repositories{{state="{state}"}} {count}')
    lines += [
        "# HELP gdk_geo_repositories_verification Repositories by verification state.",
        "# TYPE gdk_geo_repositories_verification gauge",
    ]
    for state, count in snapshot.get("verification_counts", {}).items():
        lines.append(f'gdk_geo_repositories_verification{{state="{state}"}} {count}')
    for name, kind, help_text, key in _METRICS:
        lines += [
            f"# HELP {name} {help_text}",
            f"# TYPE {name} {kind}",
            f"{name} {_number(_lookup(snapshot, key))}",
        ]
    return "\n".join(lines) + "\n"


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


_ENVIRONMENT = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_ENVIRONMENT.filters["when"] = _when

_PAGE = _ENVIRONMENT.from_string(
    """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="2">
<title>Geo: container registry replication</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin-top: 1em; }
th, td { border-bottom: 1px solid #ddd; padding: .3em .8em; text-align: left; }
.state { font-weight: 600; }
.synced { color: #217645; } .failed { color: #c91c00; }
.pending, .started { color: #9e5400; }
.failure { max-width: 40em; overflow-wrap: anywhere; font-family: monospace; }
.muted { color: #777; }
</style>
</head>
<body>
<h1>Geo secondary: container registry replication</h1>
{% if not s.replication_enabled %}
<p class="failed">Replication is disabled (<code>geo.registry_replication.enabled</code>):
nothing is synced.</p>
{% endif %}
<p>
{% for state, count in s.counts.items() %}
<span class="state {{ state }}">{{ state }}: {{ count }}</span>{{ " · " if not loop.last }}
{% endfor %}
</p>
<p>
Event cursor {{ s.cursor }}
{% if s.primary_last_event_id is not none %}
of {{ s.primary_last_event_id }} (lag {{ s.lag }})
{% endif %}
· last event {{ s.last_event_at | when(now) }}
· event feed: {{ "connected" if s.event_feed.connected else "not connected" }}
{% if s.event_feed.error %}<span class="failed">({{ s.event_feed.error }})</span>{% endif %}
</p>
<p class="muted">
Syncs {{ s.totals.syncs }} ({{ s.totals.sync_failures }} failed) ·
blobs copied {{ s.totals.blobs_copied }}, mounted {{ s.totals.blobs_mounted }} ·
{{ s.totals.bytes_copied }} bytes ·
last backfill {{ s.last_backfill_at | when(now) }} ·
last verification {{ s.last_verification_at | when(now) }}
</p>
<table>
<thead><tr>
<th>Repository</th><th>State</th><th>Retries</th><th>Next retry</th>
<th>Last synced</th><th>Last checked</th><th>Last failure</th>
</tr></thead>
<tbody>
{% for row in s.repositories %}
<tr>
<td>{{ row.repository }}</td>
<td class="state {{ row.state }}">{{ row.state }}</td>
<td>{{ row.retry_count }}</td>
<td>{{ row.retry_at | when(now) if row.state == "failed" else "—" }}</td>
<td>{{ row.last_synced_at | when(now) }}</td>
<td>{{ row.last_checked_at | when(now) }}</td>
<td class="failure">{{ row.last_sync_failure or "" }}</td>
</tr>
{% else %}
<tr><td colspan="7" class="muted">No repositories yet.</td></tr>
{% endfor %}
</tbody>
</table>
</body>
</html>
"""
)


def render_admin_page(snapshot: Status, now: float | None = None) -> str:
    """The admin page as HTML; every value from the snapshot is escaped."""
    return _PAGE.render(s=snapshot, now=time.time() if now is None else now)
