"""The secondary worker as a process: `python -m gdk_geo.secondary --config <gitlab.yml>`.

The loops are `gdk_geo.secondary.worker.Worker`; here is what wraps them in a service: the
tracking database opened (and the syncs a killed run left `started` re-queued), the HTTP
port bound before anything starts so a taken port is one clear line, the registry clients
and the event feed, the web app (`gdk_geo.secondary.web`) beside the loops on one event
loop, and SIGTERM/SIGINT stopping both. A problem the user can fix ends it with one line on
stderr and exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import anyio
import uvicorn

from gdk_geo.errors import GdkGeoError
from gdk_geo.node import log_format
from gdk_geo.node.settings import SecondaryWorkerSettings, load_secondary
from gdk_geo.node.token_auth import token_routes
from gdk_geo.registry.backoff import Backoff
from gdk_geo.registry.realm_http import server_options
from gdk_geo.registry.token_service import SECONDARY_POLICY
from gdk_geo.secondary.clients import ca_file_for, registry_clients
from gdk_geo.secondary.event_feed import EventFeed
from gdk_geo.secondary.replicator import Replicator
from gdk_geo.secondary.tracking import TrackingDB
from gdk_geo.secondary.web import worker_app
from gdk_geo.secondary.worker import Worker, logger


class _Server(uvicorn.Server):
    """uvicorn, minus its signal handling: the worker owns SIGTERM and stops everything."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(settings: SecondaryWorkerSettings) -> socket.socket:
    """Bind the HTTP port now, so "port in use" is a clear error before anything starts."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.listen_address else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.listen_address, settings.port))
    except OSError as exc:
        sock.close()
        raise GdkGeoError(
            f"the worker cannot listen on {settings.listen_address}:{settings.port}: "
            f"{exc.strerror}",
            fix="stop whatever holds the port or change the secondary's port in gdk.yml",
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    return sock


async def serve(settings: SecondaryWorkerSettings, backoff: Backoff | None = None) -> None:
    """Run the worker and its HTTP app until SIGTERM/SIGINT; a setup problem raises."""
    db = TrackingDB(settings.tracking_db_path, backoff=backoff)
    try:
        recovered = db.recover_stale_started()
        if recovered:
            logger.warning("re-queued %d sync(s) a previous run left unfinished", len(recovered))
        sock = _bind(settings)
        feed_ca = ca_file_for(settings.primary_geo_url, settings.ca_file)
        async with (
            registry_clients(settings) as (source, target),
            EventFeed(settings.primary_geo_url, settings.node_token, ca_file=feed_ca) as feed,
        ):
            worker = Worker(settings, Replicator(settings, db, source, target), feed)
            await _run_until_stopped(settings, worker, sock)
    finally:
        with contextlib.suppress(GdkGeoError):
            db.recover_stale_started()  # syncs cancelled by the shutdown start over next time
        db.close()


async def load_stream_machinery() -> None:
    """Load anyio's asyncio backend now, before the worker answers.

    Starlette streams a reply (a pass's progress, which `geo.sync` and `geo.verify` wait
    on) through an anyio task group, and anyio imports its backend on first use: about
    30 ms of imports that would otherwise land on the first `geo.sync` after a start.
    """
    await anyio.sleep(0)


async def _run_until_stopped(
    settings: SecondaryWorkerSettings, worker: Worker, sock: socket.socket
) -> None:
    await load_stream_machinery()
    app = worker_app(settings, worker, token_routes(settings.auth, SECONDARY_POLICY))
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=5,  # a hung status client must not hold a SIGTERM
        **server_options(),
    )
    server = _Server(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info(
        "Geo worker on http://%s:%d: primary registry %s, secondary registry %s, events %s",
        settings.listen_address,
        settings.port,
        settings.primary_api_url,
        settings.registry_api_url,
        settings.primary_geo_url,
    )
    http = asyncio.create_task(server.serve(sockets=[sock]))
    work = asyncio.create_task(worker.run())
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({http, work, stopped}, return_when=asyncio.FIRST_COMPLETED)
    work.cancel()
    server.should_exit = True
    await asyncio.gather(http, work, return_exceptions=True)
    stopped.cancel()
    for task in done - {stopped}:
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
    logger.info("Geo worker stopped")


def first_user_error(error: BaseException) -> GdkGeoError | None:
    """The first `GdkGeoError` in `error`, looking inside exception groups (TaskGroup)."""
    if isinstance(error, GdkGeoError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = first_user_error(inner)
            if found is not None:
                return found
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until SIGTERM; a problem the user can fix is one line on stderr and exit 1."""
    parser = argparse.ArgumentParser(prog="python -m gdk_geo.secondary")
    parser.add_argument("--config", type=Path, required=True, help="the secondary's gitlab.yml")
    parser.add_argument(
        "--retry-base", type=float, default=1.0, help="first retry delay after a failed sync (s)"
    )
    parser.add_argument("--retry-cap", type=float, default=300.0, help="longest retry delay (s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, handlers=[log_format.handler(sys.stderr)])
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        settings = load_secondary(args.config)
        asyncio.run(serve(settings, Backoff(base=args.retry_base, cap=args.retry_cap)))
    except BaseException as exc:
        user_error = first_user_error(exc)
        if user_error is None:
            raise
        print(f"gdk-geo worker: {user_error.one_line()}", file=sys.stderr)
        return 1
    return 0
