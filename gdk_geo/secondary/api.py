"""The worker API: list tracked repositories, start resync/reverify passes, stream progress.

Every route needs the node token (`Authorization: Bearer <token>` or GitLab's
`PRIVATE-TOKEN` header): `invoke geo.sync` and `geo.verify` read it from the secondary's
`gitlab.yml`, as the worker does. A pass starts in the worker's loop and the call returns
at once (202) with the URL of its progress, a stream of JSON lines that ends with a
`{"type": "done", ...}` line. The routes are documented in docs/worker-api.md.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from gdk_geo.node.exposure import node_token_given
from gdk_geo.secondary.passes import Pass, Passes
from gdk_geo.secondary.repository_index import Filters, RepositoryIndex
from gdk_geo.secondary.selection import Selection
from gdk_geo.secondary.tracking import TrackingDB

PREFIX = "/api/v4/geo"
Handler = Callable[[Request], Awaitable[Response]]


def listing(request: Request, db: TrackingDB, index: RepositoryIndex) -> dict[str, Any]:
    """One page of repositories for the query string, with the counts (API and admin page):
    per state, per verification state, and the re-checks due (synced repositories whose
    re-check backfill found due; they are counted as synced too).

    `ValueError` for a filter that is not a state, or a `per_page` that is not a number.
    """
    query = request.query_params
    filters = Filters(
        state=query.get("state") or None,
        verification_state=query.get("verification_state") or None,
        search=query.get("search") or None,
    )
    try:
        per_page = int(query.get("per_page", "50"))
    except ValueError:
        raise ValueError("per_page must be a number") from None
    page = index.page(filters, after=query.get("after") or None, per_page=per_page)
    return {
        "counts": db.counts(),
        "verification_counts": index.verification_counts(),
        "rechecks_due": db.rechecks_due(),
        "repositories": page.rows,
        "next_after": page.next_after,
    }


def selection_of(body: object) -> Selection:
    """The pass a request body asks for; `ValueError` when it is not one."""
    if body is None:
        return Selection()
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object")
    names = body.get("repositories") or []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError("repositories must be a list of repository names")
    return Selection(tuple(names), all=bool(body.get("all")), failed=bool(body.get("failed")))


def pass_accepted(run: Pass, events_url: str) -> JSONResponse:
    """202: the pass runs; its progress is at `events_url`."""
    return JSONResponse({**run.summary(), "events_url": events_url}, status_code=202)


def progress_stream(run: Pass) -> StreamingResponse:
    """The pass's events as JSON lines, from the first, until its `done` line."""

    async def lines() -> AsyncIterator[bytes]:
        async for event in run.stream():
            yield (json.dumps(event) + "\n").encode()

    return StreamingResponse(lines(), media_type="application/x-ndjson")


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"message": message}, status_code=status)


def pass_handler(
    passes: Passes,
    kind: str,
    read_selection: Callable[[Request], Awaitable[Selection]],
    reply: Callable[[Request, Pass], Response],
) -> Handler:
    """A route that starts a `kind` pass ("resync" or "reverify") over what the request asks.

    The API and the admin page read the selection differently (a JSON body, a form) and
    answer differently (the stream's URL, a redirect), but start a pass the same way: a
    selection that is not one is a 400, and the call returns once the pass is started.
    """
    start = passes.resync if kind == "resync" else passes.reverify

    async def handler(request: Request) -> Response:
        try:
            selection = await read_selection(request)
        except ValueError as exc:  # json.JSONDecodeError is one
            return error(400, str(exc))
        return reply(request, start(selection))

    return handler


async def _json_selection(request: Request) -> Selection:
    """The selection in a JSON body; an empty body is the default selection."""
    raw = await request.body()
    return selection_of(json.loads(raw) if raw.strip() else None)


def _events_reply(request: Request, run: Pass) -> Response:
    return pass_accepted(run, f"{PREFIX}/passes/{run.id}/events")


def api_routes(
    db: TrackingDB, index: RepositoryIndex, passes: Passes, node_token: str
) -> list[Route]:
    """The worker API's routes, each behind the node token."""

    def authenticated(handler: Handler) -> Handler:
        async def checked(request: Request) -> Response:
            if not node_token_given(request.headers, node_token):
                return error(401, "401 Unauthorized: the node token is missing or wrong")
            return await handler(request)

        return checked

    async def repositories(request: Request) -> Response:
        try:
            return JSONResponse(listing(request, db, index))
        except ValueError as exc:
            return error(400, str(exc))

    def start(kind: str) -> Handler:
        return pass_handler(passes, kind, _json_selection, _events_reply)

    async def events(request: Request) -> Response:
        run = passes.get(request.path_params["pass_id"])
        if run is None:
            return error(404, "404 no such pass (finished passes are kept for a while only)")
        return progress_stream(run)

    return [
        Route(f"{PREFIX}/container_repositories", authenticated(repositories), methods=["GET"]),
        Route(
            f"{PREFIX}/container_repositories/resync",
            authenticated(start("resync")),
            methods=["POST"],
        ),
        Route(
            f"{PREFIX}/container_repositories/reverify",
            authenticated(start("reverify")),
            methods=["POST"],
        ),
        Route(f"{PREFIX}/passes/{{pass_id}}/events", authenticated(events), methods=["GET"]),
    ]
