"""The secondary's side of the primary's Geo event API: long-poll, validate, hand over a page.

The contract (served by `gdk_geo.primary.app`):

    GET {primary_geo_url}/api/v4/geo/events?after=<id>&limit=<n>&wait=<seconds>
    Authorization: Bearer <node token>
    → {"events": [{"id", "action", "repository", "tag", "digest", "created_at"}],
       "last_event_id": N, "log_id": "<the log's identity>"}

Ids count within one log only: after a promotion the new primary's log numbers its events
from 1 again. The page carries the log's identity so that the cursor can say which log it
counts in, and be restarted (`restarted`) when the log it reads is another one.

An event only ever names a repository (and a tag as a hint); nothing in it is fetched. A
malformed event is skipped but still counted in `last_seen_id`, so one bad entry cannot wedge
the cursor; the backfill would repair whatever it stood for.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from gdk_geo.registry import http
from gdk_geo.registry.reference import is_repository
from gdk_geo.registry.transport import CONNECT_SECONDS

logger = logging.getLogger("gdk_geo.worker")

POLL_WAIT_SECONDS = 25
PAGE_LIMIT = 100


class EventFeedError(Exception):
    """The event API could not be read; the message says what to check."""


@dataclass(frozen=True)
class FeedEvent:
    """One usable event: the repository to sync and, for a push, the tag it touched."""

    id: int
    action: str
    repository: str
    tag: str | None
    created_at: float | None


@dataclass(frozen=True)
class EventPage:
    """One answer of the event API."""

    events: list[FeedEvent]
    last_seen_id: int  # the highest id in the page, skipped events included; 0 when empty
    primary_last_event_id: int
    log_id: str | None = None  # the identity of the log the ids count in (None: not told)

    @property
    def last_created_at(self) -> float | None:
        times = [event.created_at for event in self.events if event.created_at is not None]
        return max(times) if times else None


class EventFeed:
    """A keep-alive connection to the primary's event API (aiohttp, opened on first use)."""

    def __init__(
        self,
        primary_geo_url: str,
        node_token: str,
        *,
        ca_file: Path | None = None,
        wait: int = POLL_WAIT_SECONDS,
        limit: int = PAGE_LIMIT,
    ) -> None:
        self.url = primary_geo_url.rstrip("/") + "/api/v4/geo/events"
        self.wait = wait
        self.limit = limit
        self._http = http.LazySession(
            ca_file=ca_file,
            max_connections=1,
            # The read timeout must outlast the long-poll, or every idle poll is an error: the
            # wait, a round trip (0.3 s on a long WAN) and the service's time, 15 s to spare.
            # Connecting is the registry client's two round trips (`transport.CONNECT_SECONDS`).
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=CONNECT_SECONDS, sock_read=wait + 15.0
            ),
            headers={"Authorization": f"Bearer {node_token}", "User-Agent": "gdk-geo-worker"},
        )

    async def __aenter__(self) -> EventFeed:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._http.aclose()

    async def next_page(self, after: int, *, wait: int | None = None) -> EventPage:
        """Events after `after`, waiting up to `wait` seconds (default: the feed's) for one."""
        params = {"after": after, "limit": self.limit, "wait": self.wait if wait is None else wait}
        try:
            async with self._http().get(self.url, params=params) as response:
                status, body = response.status, await response.read()
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            raise EventFeedError(
                f"{self.url} did not answer ({exc.__class__.__name__}: {exc})"
            ) from exc
        if status == 401:
            raise EventFeedError(
                f"{self.url} refused the node token (HTTP 401): the nodes' geo.node_token "
                "differ; run `invoke geo.reconfigure`"
            )
        if status != 200:
            raise EventFeedError(f"{self.url} answered HTTP {status}")
        try:
            return parse_page(json.loads(body))
        except (ValueError, TypeError, KeyError) as exc:
            raise EventFeedError(
                f"{self.url} answered something that is not an event page: {exc}"
            ) from exc


def parse_page(body: Any) -> EventPage:
    """An `EventPage` from the JSON body; raises ValueError/TypeError/KeyError when malformed."""
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise ValueError("no `events` list")
    events: list[FeedEvent] = []
    last_seen = 0
    for raw in body["events"]:
        event_id = _integer(raw.get("id") if isinstance(raw, dict) else None)
        if event_id is None:
            raise ValueError(f"an event without an integer id: {raw!r:.80}")
        last_seen = max(last_seen, event_id)
        event = parse_event(raw, event_id)
        if event is None:
            logger.warning("skipping unusable Geo event %d: %.120r", event_id, raw)
        else:
            events.append(event)
    primary_last = _integer(body.get("last_event_id"))
    log_id = body.get("log_id") if isinstance(body.get("log_id"), str) else None
    return EventPage(events, last_seen, max(primary_last or 0, last_seen), log_id or None)


def restarted(page: EventPage, cursor: int, cursor_log: str | None) -> str | None:
    """Why the cursor no longer counts in the log `page` came from, or None when it does.

    A cursor read from another log (the primary changed) restarts, whatever its number: the
    new log's ids would otherwise be skipped up to it, or read as the old log's. A cursor
    that names no log yet (kept by an older worker) adopts the page's; then only a log
    shorter than the cursor shows that it started again.
    """
    if page.log_id and cursor_log and page.log_id != cursor_log:
        return f"the primary's event log is another one ({page.log_id}, our cursor {cursor_log})"
    if page.primary_last_event_id < cursor:
        return (
            f"the primary's event log restarted (its last event is "
            f"{page.primary_last_event_id}, our cursor {cursor})"
        )
    return None


def parse_event(raw: dict[str, Any], event_id: int) -> FeedEvent | None:
    """A `FeedEvent`, or None when the repository name is not one a registry would accept."""
    repository = raw.get("repository")
    action = raw.get("action")
    if not isinstance(repository, str) or action not in ("updated", "deleted"):
        return None
    if not is_repository(repository):
        return None
    tag = raw.get("tag") if isinstance(raw.get("tag"), str) else None
    created = raw.get("created_at")
    created_at = float(created) if isinstance(created, int | float) else None
    return FeedEvent(event_id, action, repository, tag, created_at)


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
