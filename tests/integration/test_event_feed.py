"""The secondary's client of the primary's event API: parsing pages, and the aiohttp feed.

The feed is run against a small aiohttp server on a loopback port, so what is checked is
what goes over the wire: the bearer token, the query, and each failure's message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from gdk_geo.secondary.event_feed import EventFeed, EventFeedError, parse_page

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def test_event_page_skips_unusable_events_but_moves_past_them() -> None:
    page = parse_page(
        {
            "events": [
                {"id": 4, "action": "updated", "repository": "group/app", "tag": "v1"},
                {"id": 5, "action": "updated", "repository": "../../etc", "tag": None},
                {"id": 6, "action": "deleted", "repository": "group/app", "tag": "v1"},
            ],
            "last_event_id": 9,
        }
    )
    assert [event.id for event in page.events] == [4, 6]
    assert page.last_seen_id == 6
    assert page.primary_last_event_id == 9


def test_event_page_without_events_list_is_an_error() -> None:
    with pytest.raises(ValueError):
        parse_page({"last_event_id": 3})


async def _started(handler: Handler) -> tuple[web.AppRunner, str]:
    """A server for the event API on a port the OS picks; returns it and its base URL."""
    app = web.Application()
    app.router.add_get("/api/v4/geo/events", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    return runner, f"http://{host}:{port}/"


async def _serve(handler: Handler, feed_call: Callable[[EventFeed], Awaitable[Any]]) -> Any:
    runner, url = await _started(handler)
    try:
        async with EventFeed(url, "node-token", wait=1) as feed:
            return await feed_call(feed)
    finally:
        await runner.cleanup()


def test_the_feed_sends_the_token_and_the_cursor() -> None:
    seen: dict[str, Any] = {}

    async def events(request: web.Request) -> web.Response:
        seen.update(auth=request.headers.get("Authorization"), query=dict(request.query))
        body = {
            "events": [{"id": 8, "action": "updated", "repository": "g/a", "tag": "v1"}],
            "last_event_id": 8,
        }
        return web.json_response(body)

    page = asyncio.run(_serve(events, lambda feed: feed.next_page(7, wait=0)))
    assert seen == {
        "auth": "Bearer node-token",
        "query": {"after": "7", "limit": "100", "wait": "0"},
    }
    assert [(e.id, e.repository, e.tag) for e in page.events] == [(8, "g/a", "v1")]


@pytest.mark.parametrize(
    ("status", "body", "message"),
    [
        (401, b"{}", "refused the node token"),
        (500, b"{}", "answered HTTP 500"),
        (200, b"<html>", "not an event page"),
        (200, b'{"events": 3}', "not an event page"),
    ],
)
def test_a_bad_answer_is_an_event_feed_error(status: int, body: bytes, message: str) -> None:
    async def events(request: web.Request) -> web.Response:
        return web.Response(status=status, body=body, content_type="application/json")

    with pytest.raises(EventFeedError, match=message):
        asyncio.run(_serve(events, lambda feed: feed.next_page(0)))


def test_nobody_listening_is_an_event_feed_error() -> None:
    async def empty(request: web.Request) -> web.Response:
        return web.json_response({})

    async def poll() -> None:
        runner, url = await _started(empty)
        await runner.cleanup()  # the port was ours a moment ago: nobody listens there now
        async with EventFeed(url, "node-token") as feed:
            await feed.next_page(0)

    with pytest.raises(EventFeedError, match="did not answer"):
        asyncio.run(poll())
