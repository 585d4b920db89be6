"""The primary node's Geo service: registry notifications in, Geo event log out.

The app: its routes, the state they share, and `main`. Which notification events are
recorded is `gdk_geo.primary.triage`; the log itself is `gdk_geo.primary.eventlog`.

Three jobs, each one endpoint:

* `POST /api/v4/container_registry_event/events` receives the registry's notifications (the
  path GitLab serves them on), keeps the manifest push/delete events and appends them to
  the Geo event log before answering.
* `GET /api/v4/geo/events` serves the log to the secondary, long-polling so that a push is
  heard of within milliseconds rather than at the next poll.
* `GET /-/health` and `GET /-/metrics` tell the tasks and a human how it is going.

Bound beyond loopback (`gdk_geo.node.exposure`), `/-/metrics` needs the node token too, and
`/-/health` without it says only that the service is up.

SQLite runs in the event loop, not in a thread pool. Each call is one short statement or
one small transaction; the registry delivers notifications serially, so there is no queue
for a pool to drain. Staying on the loop also means there is never an `await` between
"the log has nothing after N" and "wait for news", so a long-poll cannot miss a wake-up,
and the single connection needs no lock.

Run it as `python -m gdk_geo.primary --config <node_root>/config/gitlab.yml`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hmac
import logging
import re
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from prometheus_client import generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.exposure import BEARER_CHALLENGE, Exposure
from gdk_geo.node.log_format import FORMAT as LOG_FORMAT
from gdk_geo.node.log_format import ZonedFormatter
from gdk_geo.node.settings import PrimaryServiceSettings, load_primary
from gdk_geo.node.token_auth import token_routes
from gdk_geo.primary.eventlog import EventLog, GeoEvent, LogWatch
from gdk_geo.primary.metrics import Counters, PrimaryCollector
from gdk_geo.primary.triage import (
    NOTIFICATION_CONTENT_TYPES,
    BadNotification,
    parse_envelope,
    summary,
    triage,
)
from gdk_geo.registry.realm_http import server_options
from gdk_geo.registry.token_service import PRIMARY_POLICY

# The service's one logger, named after the package `python -m` runs.
logger = logging.getLogger("gdk_geo.primary")

MAX_BODY_BYTES = 1024 * 1024
DRAIN_BYTES = 8 * MAX_BODY_BYTES  # an oversized body up to this is read to the end, unkept
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000
DEFAULT_WAIT, MAX_WAIT = 0, 60

_INTEGER = re.compile(r"-?[0-9]{1,19}")
MAX_LOGGED_REJECTIONS = 5
MAX_SQLITE_INTEGER = 2**63 - 1


# --- Request helpers ----------------------------------------------------------------------


class BodyTooLarge(Exception):
    """The body is over the limit; reading stopped there."""


async def read_limited_body(request: Request, limit: int) -> bytes:
    """The request body, read chunk by chunk and abandoned as soon as it passes `limit`.

    Content-Length is trusted only to refuse early: a chunked body, or one that says less
    than it sends, is measured as it arrives, and never more than `limit` bytes are kept.
    """
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        if int(declared) > DRAIN_BYTES:
            raise BodyTooLarge  # not worth reading: the client may see a reset instead
        await drain(request, 0)
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            await drain(request, len(body) + len(chunk))
        body += chunk
    return bytes(body)


async def drain(request: Request, read: int) -> None:
    """Read and drop the rest of an oversized body (up to DRAIN_BYTES), then raise
    BodyTooLarge. Answering while the client still sends makes the server close a socket
    with unread data, which resets the connection: the client then sees a broken pipe,
    not the 413 (10 tries in 20 with a 2 MiB body did)."""
    async for chunk in request.stream():
        read += len(chunk)
        if read > DRAIN_BYTES:
            break
    raise BodyTooLarge


def media_type_of(request: Request) -> str:
    """The request's media type without parameters (`; charset=utf-8`), lowercased."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def header_equals(request: Request, name: str, expected: str) -> bool:
    """Whether the request has exactly one `name` header equal to `expected`, in constant time.

    Starlette decodes header bytes as latin-1, so encoding back gives the bytes that were
    sent; the expected value is compared as the UTF-8 the sender was configured with.
    """
    values = request.headers.getlist(name)
    if len(values) != 1:
        return False
    return hmac.compare_digest(values[0].encode("latin-1"), expected.encode("utf-8"))


def integer_param(request: Request, name: str, default: int, low: int, high: int) -> int:
    """A query parameter as an int clamped to [low, high]; `ValueError` when not an integer."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw):
        raise ValueError(f"`{name}` must be an integer")
    return max(low, min(high, int(raw)))


def error(status_code: int, reason: str) -> JSONResponse:
    return JSONResponse({"error": reason}, status_code=status_code)


# --- The service --------------------------------------------------------------------------


class PrimaryService:
    """The endpoints, and the state they share: the log, the watch, the counters."""

    def __init__(self, settings: PrimaryServiceSettings) -> None:
        # load_primary refuses an empty secret; settings built by hand must not slip one in,
        # since an empty expected value would let an empty header through.
        for key, value in [
            ("registry.notification_secret", settings.notification_secret),
            ("geo.node_token", settings.node_token),
        ]:
            if not value:
                raise GdkGeoError(
                    f"{key} is empty: the primary service would have no password",
                    fix="run `invoke geo.reconfigure` (it generates the secret and the token)",
                )
        self._secret = settings.notification_secret
        self._bearer = f"Bearer {settings.node_token}"
        self._exposure = Exposure(settings.listen_address, settings.node_token)
        self.log = EventLog(settings.event_log_path)
        self.watch = LogWatch()
        self.counters = Counters()
        self.metrics = CollectorRegistry(auto_describe=False)
        self.metrics.register(
            PrimaryCollector(self.counters, self.log.last_id, lambda: self.watch.waiting)
        )
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._loop = asyncio.get_running_loop()
        logger.info(
            "primary Geo service ready: event log %s, last event id %d",
            self.log.path,
            self.log.last_id(),
        )
        try:
            yield
        finally:
            self.watch.stop()
            self.log.close()
            logger.info("event log closed")

    def request_stop(self) -> None:
        """End the long-polls in flight; safe to call from a signal handler."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.watch.stop)

    async def receive_notification(self, request: Request) -> Response:
        """Distribution's notification endpoint.

        Refusals come in the order that tells an outsider least: an unauthenticated sender
        learns nothing about what we would accept. Once the envelope itself is acceptable the
        answer is 200 even when some events are rejected: Distribution retries anything
        else forever, and a bad event would never get better by being sent again.
        """
        if not header_equals(request, "authorization", self._secret):
            return self._unauthorized(request)
        if media_type_of(request) not in NOTIFICATION_CONTENT_TYPES:
            return error(415, "expected a registry notification (application/json)")
        try:
            raw_events = parse_envelope(await read_limited_body(request, MAX_BODY_BYTES))
        except BodyTooLarge:
            return error(413, f"body is larger than {MAX_BODY_BYTES} bytes")
        except ClientDisconnect:
            return error(400, "client disconnected")
        except BadNotification as exc:
            return error(400, str(exc))
        return self._record(raw_events)

    def _unauthorized(self, request: Request) -> Response:
        self.counters["unauthorized"] += 1
        client = request.client.host if request.client else "unknown"
        logger.warning(
            "refused a registry notification from %s: Authorization header %s",
            client,
            "missing" if "authorization" not in request.headers else "does not match",
        )
        return error(401, "unauthorized")

    def _record(self, raw_events: list[Any]) -> Response:
        triaged = [triage(raw) for raw in raw_events]
        wanted = [t.event for t in triaged if t.event is not None]
        try:
            recorded = self.log.record(wanted)
        except sqlite3.Error as exc:
            logger.error("cannot write the Geo event log: %s", exc)
            return error(503, "the event log cannot be written; retry later")
        if recorded:
            self.watch.notify()
        self._log_rejections([t.reason for t in triaged if t.outcome == "reject"])
        answer = summary(triaged, recorded)
        self.counters.update(answer)
        logger.info("registry notification: %s", answer)
        return JSONResponse(answer)

    def _log_rejections(self, reasons: list[str]) -> None:
        """A few reasons per notification: enough to debug, too few to flood the log."""
        for reason in reasons[:MAX_LOGGED_REJECTIONS]:
            logger.warning("rejected a registry event: %s", reason)
        if len(reasons) > MAX_LOGGED_REJECTIONS:
            logger.warning("rejected %d more events", len(reasons) - MAX_LOGGED_REJECTIONS)

    async def events(self, request: Request) -> Response:
        """The event API: the log after `after`, waiting up to `wait` seconds for news."""
        if not header_equals(request, "authorization", self._bearer):
            return error(401, "unauthorized")
        try:
            after = integer_param(request, "after", 0, 0, MAX_SQLITE_INTEGER)
            limit = integer_param(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
            wait = integer_param(request, "wait", DEFAULT_WAIT, 0, MAX_WAIT)
        except ValueError as exc:
            return error(400, str(exc))
        found = await self._events_after(after, limit, wait)
        page = {"events": [event_json(e) for e in found], "last_event_id": self.log.last_id()}
        return JSONResponse({**page, "log_id": self.log.identity})  # ids count in this log only

    async def _events_after(self, after: int, limit: int, wait: int) -> list[GeoEvent]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        found = self.log.after(after, limit)
        while not found and not self.watch.stopped and (remaining := deadline - loop.time()) > 0:
            await self.watch.wait(remaining)
            found = self.log.after(after, limit)
        return found

    async def health(self, request: Request) -> Response:
        """Up or not, for anyone; the log's head only on loopback or with the node token."""
        if not self._exposure.admits(request.headers):
            return JSONResponse({"status": "ok", "node": "primary"})
        return JSONResponse(
            {"status": "ok", "node": "primary", "last_event_id": self.log.last_id()}
        )

    async def metrics_page(self, request: Request) -> Response:
        """Prometheus' text format, from the collector over the counters and the log;
        beyond loopback, only for the node token."""
        if not self._exposure.admits(request.headers):
            return JSONResponse(
                {"error": "unauthorized"},
                status_code=401,
                headers={"WWW-Authenticate": BEARER_CHALLENGE},
            )
        return Response(generate_latest(self.metrics), media_type=CONTENT_TYPE_PLAIN_0_0_4)


def event_json(event: GeoEvent) -> dict[str, Any]:
    """One event as the secondary's worker reads it; these keys are a contract."""
    return {
        "id": event.id,
        "action": event.action,
        "repository": event.repository,
        "tag": event.tag,
        "digest": event.digest,
        "created_at": event.created_at,
    }


def create_app(settings: PrimaryServiceSettings) -> Starlette:
    """The service as an ASGI app; opens the event log now so a bad one fails before serving."""
    service = PrimaryService(settings)
    app = Starlette(
        routes=[
            Route(
                "/api/v4/container_registry_event/events",
                service.receive_notification,
                methods=["POST"],
            ),
            Route("/api/v4/geo/events", service.events, methods=["GET"]),
            Route("/-/health", service.health, methods=["GET"]),
            Route("/-/metrics", service.metrics_page, methods=["GET"]),
            *token_routes(settings.auth, PRIMARY_POLICY),
        ],
        lifespan=service.lifespan,
    )
    app.state.service = service
    return app


# --- Running it ---------------------------------------------------------------------------

LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "timestamped": {"()": ZonedFormatter, "fmt": LOG_FORMAT},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "timestamped",
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "gdk_geo": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}


class _Server(uvicorn.Server):
    """uvicorn's server, where a stop signal also ends the long-polls in flight.

    uvicorn lets open requests finish before it exits; a secondary's long-poll would hold a
    SIGTERM for up to a minute. Woken, it answers at once with what it has.
    """

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._on_exit()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT; a setup problem is one line on stderr and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m gdk_geo.primary")
    parser.add_argument("--config", type=Path, required=True, help="the node's gitlab.yml")
    args = parser.parse_args(argv)
    try:
        settings = load_primary(args.config)
        app = create_app(settings)
    except GdkGeoError as exc:
        print(f"gdk-geo primary service: {exc.one_line()}", file=sys.stderr)
        return 1
    config = uvicorn.Config(
        app,
        host=settings.listen_address,
        port=settings.port,
        log_config=LOG_CONFIG,
        lifespan="on",
        proxy_headers=False,
        server_header=False,
        timeout_graceful_shutdown=5,
        **server_options(),
    )
    _Server(config, on_exit=app.state.service.request_stop).run()
    return 0
