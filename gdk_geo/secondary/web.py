"""The worker's whole HTTP app: status (`status_page`), worker API (`api`), admin page (`admin`).

One Starlette app on `geo.secondary.port`, behind the `Host` check, so a page served on any
other name (DNS rebinding) gets nothing from any route. Bound beyond loopback
(`gdk_geo.node.exposure`), every route but `/-/health` also asks for a credential: the node
token for the worker API, the metrics and the status JSON, the registry user's for the
admin page.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute
from starlette.types import ASGIApp

from gdk_geo.node.exposure import Exposure, admin_login
from gdk_geo.node.settings import SecondaryWorkerSettings
from gdk_geo.secondary.admin import admin_routes
from gdk_geo.secondary.api import api_routes
from gdk_geo.secondary.host_check import HostCheck, allowed_hosts
from gdk_geo.secondary.passes import Passes
from gdk_geo.secondary.status_page import create_app

if TYPE_CHECKING:
    from gdk_geo.secondary.worker import Worker


def site_health(worker: Worker) -> dict[str, Any]:
    """The admin page's health line: the event cursor, its lag, the last event, the feed.

    Read on every poll of the page, so it takes no repository rows (5,000 of them would be
    most of a poll's time).
    """
    cursor, last_event_at = worker.db.cursor(), worker.db.last_event_at()
    primary_last = worker.activity.primary_last_event_id
    return {
        "replication_enabled": worker.settings.replication_enabled,
        "cursor": cursor,
        "primary_last_event_id": primary_last,
        "lag": None if primary_last is None else max(0, primary_last - cursor),
        "last_event_at": last_event_at,
        "last_event_age_seconds": None if last_event_at is None else time.time() - last_event_at,
        "event_feed": {
            "connected": worker.activity.feed_connected,
            "error": worker.activity.feed_error,
        },
    }


def worker_app(
    settings: SecondaryWorkerSettings, worker: Worker, token_routes: Sequence[BaseRoute] = ()
) -> ASGIApp:
    """Every route of the worker (and the registry's token realm), only for its own `Host`."""
    passes = Passes(worker.replicator, worker.in_flight, worker.index, worker.wake)
    exposure = Exposure(settings.listen_address, settings.node_token)
    login = admin_login(settings.listen_address, settings.auth.username, settings.auth.password)
    app = Starlette(
        routes=[
            *api_routes(worker.db, worker.index, passes, settings.node_token),
            *admin_routes(worker.db, worker.index, passes, lambda: site_health(worker), login),
            *create_app(worker.status, exposure).routes,
            *token_routes,
        ]
    )
    return HostCheck(app, allowed_hosts(settings.hostname, settings.listen_address, settings.port))
