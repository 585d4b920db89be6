"""Hostile input the other hostile tests leave out: the event API's side, and the worker's.

`test_primary_service_hostile.py` and `test_primary_service_fuzz.py` cover the notification
endpoint (bodies, names, sizes, headers, URLs in events, 1,000 random envelopes). What is left:

* the event API, which hands the whole replication history to whoever holds the node token:
  random Authorization headers and query strings never get past 401 without the exact
  token, never cause a 5xx, and never change the log;
* methods the endpoints don't serve are refused, not crashed on;
* the worker's reading of an event page, should the primary (or a man in the middle of a
  misconfigured plain-HTTP link) send garbage: it either refuses the page or yields only
  events a registry could hold, and never moves its cursor backwards.

Everything runs in process through httpx's ASGI transport: thousands of requests in seconds,
and an exception in the app is raised here instead of hiding behind a 500.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from fuzzing import examples
from helpers import in_process_primary_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gdk_geo.primary.app import create_app
from gdk_geo.primary.eventlog import EventLog, RegistryEvent
from gdk_geo.registry.reference import is_repository
from gdk_geo.secondary.event_feed import parse_page

SECRET = "hostile-events-notification-secret"
TOKEN = "hostile-events-node-token"
EVENTS = "/api/v4/geo/events"
NOTIFY = "/api/v4/container_registry_event/events"

Send = Callable[[str, str, dict[str, bytes]], httpx.Response]


@pytest.fixture(scope="module")
def app_request(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Send, EventLog]]:
    """Requests to the primary's app in this process, with one event already in its log."""
    root: Path = tmp_path_factory.mktemp("hostile-events")
    app = create_app(in_process_primary_settings(root, SECRET, TOKEN))
    log: EventLog = app.state.service.log
    log.record([RegistryEvent("seed", "updated", "group/app", "v1", None)])
    transport = httpx.ASGITransport(app=app)
    with anyio.from_thread.start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=transport, base_url="http://primary")

        def send(method: str, url: str, headers: dict[str, bytes]) -> httpx.Response:
            return portal.call(functools.partial(client.request, method, url, headers=headers))

        yield send, log
        portal.call(client.aclose)
    log.close()


FUZZ = settings(
    max_examples=examples(500), deadline=None, suppress_health_check=[HealthCheck.too_slow]
)

authorizations = st.one_of(
    st.just(f"Bearer {TOKEN}"),
    st.sampled_from(
        [
            "",
            "Bearer",
            "Bearer ",
            TOKEN,
            f"bearer {TOKEN}",
            f"Bearer  {TOKEN}",
            f"Bearer {TOKEN} ",
            f"Bearer {TOKEN[:-1]}",
            f"Bearer {TOKEN}\x00",
            f"Basic {TOKEN}",
            SECRET,
            f"Bearer {SECRET}",
        ]
    ),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=60),
)
query_values = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
    st.text(max_size=12),
    st.sampled_from(["", "0", "-0", "1e3", "0x10", "٣", "9" * 400, "%00", "1;2"]),
)
queries = st.dictionaries(st.sampled_from(["after", "limit", "other", "callback"]), query_values)


@FUZZ
@given(authorization=authorizations, query=queries)
def test_the_event_api_opens_only_for_the_exact_token(
    app_request: tuple[Send, EventLog], authorization: str, query: dict[str, str]
) -> None:
    send, log = app_request
    before = log.last_id()
    # `wait` is pinned to 0 (the last value wins): a long-poll would only make this slow.
    url = httpx.URL(EVENTS, params={**query, "wait": "0"})

    # Header bytes as sent on the wire (httpx would refuse non-ASCII text).
    response = send("GET", str(url), {"Authorization": authorization.encode("latin-1")})

    if authorization != f"Bearer {TOKEN}":
        assert response.status_code == 401, response.text
        assert TOKEN not in response.text
    else:
        assert response.status_code in (200, 400), response.text
    assert log.last_id() == before, "reading the log never writes it"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", NOTIFY),
        ("PUT", NOTIFY),
        ("DELETE", NOTIFY),
        ("POST", EVENTS),
        ("DELETE", EVENTS),
        ("POST", "/-/health"),
        ("GET", "/api/v4/geo/events/../../-/health"),
        ("GET", "/api/v4/container_registry_event/events/%2e%2e"),
    ],
)
def test_other_methods_and_paths_are_refused(
    app_request: tuple[Send, EventLog], method: str, path: str
) -> None:
    send, log = app_request
    before = log.last_id()

    response = send(method, path, {"Authorization": SECRET.encode()})

    assert response.status_code in (404, 405), (method, path, response.status_code)
    assert log.last_id() == before


# -- The worker reading a hostile event page -------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
repository_names = st.one_of(
    st.sampled_from(
        ["group/app", "../etc", "/group/app", "Group/App", "group//app", "a" * 300, "", "g/.a"]
    ),
    st.text(max_size=20),
)
events = st.fixed_dictionaries(
    {"id": st.integers(min_value=-5, max_value=10**6) | json_scalars},
    optional={
        "action": st.sampled_from(["updated", "deleted", "pushed", ""]) | json_scalars,
        "repository": repository_names | json_values,
        "tag": st.sampled_from(["v1", "../v1", ""]) | json_values,
        "created_at": json_scalars,
    },
)
pages = st.one_of(
    st.fixed_dictionaries(
        {"events": st.lists(events | json_values, max_size=6)},
        optional={"last_event_id": json_scalars},
    ),
    json_values,
)


@settings(max_examples=examples(500), deadline=None)
@given(body=pages)
def test_the_worker_refuses_a_bad_page_or_keeps_only_valid_events(body: Any) -> None:
    try:
        page = parse_page(body)
    except (ValueError, TypeError, KeyError):
        return  # the feed reports the page as unreadable and asks again later
    assert all(is_repository(event.repository) for event in page.events)
    assert all(event.action in ("updated", "deleted") for event in page.events)
    assert all(event.id <= page.last_seen_id for event in page.events)
    assert page.primary_last_event_id >= page.last_seen_id
