"""The `/admin/geo` page: GitLab's Geo replication page for container repositories.

Site health, synced and verified progress bars, the repositories filtered by sync and
verification state or searched by name, keyset-paged (fast at 10,000 rows), with Resync
and Reverify on every row, "Resync all failed" and "Reverify all". The page is rendered by
`templates/admin/geo.html.j2` (Jinja, autoescaped) and keeps itself current with a few
lines of JavaScript polling `/admin/geo/repositories.json`.

On a loopback listener the page has no login; loopback, the `Host` check
(`gdk_geo.secondary.host_check`) and a per-process CSRF token on every action (POST only)
guard it. Beyond loopback (`gdk_geo.node.exposure`) every route of the page also asks for
the registry user's credentials with HTTP Basic, as GitLab's admin pages require an admin;
the Host check and the CSRF token stay. It never shows the node token: its actions start
passes in the worker directly (`gdk_geo.secondary.passes`).
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from gdk_geo.node.exposure import BASIC_CHALLENGE, BasicLogin
from gdk_geo.secondary.api import Handler, error, listing, pass_accepted, pass_handler
from gdk_geo.secondary.passes import Pass, Passes
from gdk_geo.secondary.repository_index import VERIFICATION_STATES, RepositoryIndex
from gdk_geo.secondary.selection import Selection
from gdk_geo.secondary.tracking import STATES, TrackingDB

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
SiteHealth = Callable[[], dict[str, Any]]


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


def _percent(part: int, whole: int) -> int:
    return 100 if whole == 0 else int(100 * part / whole)


_ENVIRONMENT = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=True, trim_blocks=True, lstrip_blocks=True
)
_ENVIRONMENT.filters["when"] = _when
_ENVIRONMENT.globals["percent"] = _percent


def page_json(request: Request, db: TrackingDB, index: RepositoryIndex, health: SiteHealth) -> Any:
    """What the page shows, as its script reads it: the listing plus the site health."""
    return {**listing(request, db, index), "health": health(), "now": time.time()}


def render_page(data: dict[str, Any], filters: dict[str, str], csrf_token: str) -> str:
    """The page as HTML; every value is escaped by the template's autoescape."""
    page = _ENVIRONMENT.get_template("admin/geo.html.j2")
    return page.render(
        d=data,
        f=filters,
        csrf_token=csrf_token,
        states=STATES,
        verification_states=VERIFICATION_STATES,
        now=data["now"],
    )


def admin_routes(
    db: TrackingDB,
    index: RepositoryIndex,
    passes: Passes,
    health: SiteHealth,
    login: BasicLogin | None = None,
) -> list[Route]:
    """The page, its JSON, and its POST actions (each checked against this process's token);
    with a `login` (a listener beyond loopback), every one behind it first."""
    csrf_token = secrets.token_urlsafe(32)

    def signed_in(handler: Handler) -> Handler:
        if login is None:
            return handler

        async def checked(request: Request) -> Response:
            if not login.accepts(request.headers):
                refused = error(401, "401 Unauthorized: sign in as the registry user")
                refused.headers["WWW-Authenticate"] = BASIC_CHALLENGE
                return refused
            return await handler(request)

        return checked

    async def page(request: Request) -> Response:
        try:
            data = page_json(request, db, index, health)
        except ValueError as exc:
            return error(400, str(exc))
        filters = {key: request.query_params.get(key, "") for key in _FILTER_KEYS}
        return HTMLResponse(render_page(data, filters, csrf_token))

    async def repositories(request: Request) -> Response:
        try:
            return JSONResponse(page_json(request, db, index, health))
        except ValueError as exc:
            return error(400, str(exc))

    def action(kind: str) -> Handler:
        start = pass_handler(passes, kind, _form_selection, _action_reply)

        async def handler(request: Request) -> Response:
            form = _form(await request.body())
            given = request.headers.get("x-csrf-token") or form.get("csrf_token", "")
            if not hmac.compare_digest(given.encode(errors="replace"), csrf_token.encode()):
                return error(403, "403 Forbidden: the CSRF token is missing or wrong")
            return await start(request)

        return handler

    async def pass_status(request: Request) -> Response:
        run = passes.get(request.path_params["pass_id"])
        if run is None:
            return error(404, "404 no such pass")
        return JSONResponse({**run.summary(), "last": run.events[-1] if run.events else None})

    return [
        Route("/admin/geo", signed_in(page), methods=["GET"]),
        Route("/admin/geo/repositories.json", signed_in(repositories), methods=["GET"]),
        Route("/admin/geo/resync", signed_in(action("resync")), methods=["POST"]),
        Route("/admin/geo/reverify", signed_in(action("reverify")), methods=["POST"]),
        Route("/admin/geo/passes/{pass_id}", signed_in(pass_status), methods=["GET"]),
    ]


_FILTER_KEYS = ("state", "verification_state", "search", "after")


def _form(body: bytes) -> dict[str, str]:
    """A urlencoded form body (what the page's forms and script send), last value wins."""
    fields = parse_qs(body.decode(errors="replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in fields.items()}


def _selection(form: dict[str, str]) -> Selection:
    """One repository (`repository`), all failed (`failed=1`) or all (`all=1`)."""
    name = form.get("repository", "").strip()
    if name:
        return Selection((name,))
    if form.get("failed") == "1":
        return Selection(failed=True)
    if form.get("all") == "1":
        return Selection(all=True)
    raise ValueError("say which repositories: repository=NAME, failed=1 or all=1")


async def _form_selection(request: Request) -> Selection:
    return _selection(_form(await request.body()))


def _action_reply(request: Request, run: Pass) -> Response:
    """A plain form post goes back to the page; the page's script gets the pass as JSON."""
    if "x-csrf-token" not in request.headers:
        return RedirectResponse("/admin/geo", status_code=303)
    return pass_accepted(run, f"/admin/geo/passes/{run.id}")
