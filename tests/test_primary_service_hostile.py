"""The primary Geo service against input nobody well-meaning would send.

The rule under test: hostile input gets a 4xx (or a 200 that records nothing), never a
5xx, never a crash, never a recorded event that is not a valid manifest push or delete,
and never an outgoing connection to a URL taken from an event.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from helpers import in_process_primary_settings
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_primary_service import (
    NOTIFY,
    OCI_MANIFEST,
    V1,
    V2,
    Primary,
    distribution_event,
    envelope,
    start_primary,
    stop,
    unique_repository,
)

from gdk_geo.primary.app import MAX_BODY_BYTES, create_app
from gdk_geo.primary.eventlog import EventLog
from gdk_geo.primary.triage import triage
from gdk_geo.registry.reference import is_repository

SECRET = "hostile-test-secret"
TOKEN = "hostile-test-token"
DIGEST = "sha256:" + "0123456789abcdef" * 4

HOSTILE_REPOSITORIES = [
    "..",
    "../etc/passwd",
    "group/../app",
    "/group/app",
    "group/app/",
    "group//app",
    "Group/App",
    "GROUP",
    "group/app:v1",
    "group/app@sha256:00",
    "group app",
    "group/app\n",
    "group/app\x00",
    "-group/app",
    "group/app-",
    "group/.app",
    "group/_app",
    "gröup/app",
    "group/app%2F..",
    "a" * 256,
    "/".join(["a"] * 128) + "/a",
    "",
]

HOSTILE_TAGS = [".v1", "-v1", "v1/evil", "v 1", "v1\n", "t" * 129, "ü", "v1:latest"]
HOSTILE_DIGESTS = [
    "sha256:" + "0" * 63,
    "sha256:" + "G" * 64,
    "SHA256:" + "0" * 64,
    "sha256" + "0" * 64,
    "sha256:" + "0" * 64 + "\n",
    ":" + "0" * 64,
    "md5:00",
]


# --- Against the real server --------------------------------------------------------------


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Primary]:
    running = start_primary(tmp_path_factory.mktemp("hostile") / "primary")
    yield running
    stop(running.process)
    log = running.log_text()
    assert "Traceback" not in log, log
    assert not re.search(r'HTTP/1\.1" 5\d\d', log), log


@pytest.mark.parametrize("repository", HOSTILE_REPOSITORIES)
def test_hostile_repository_names_are_rejected(primary: Primary, repository: str) -> None:
    before = primary.last_event_id()
    push = distribution_event("push", "group/app", tag="v1")
    push["target"]["repository"] = repository

    response = primary.notify(envelope(push))

    assert response.status_code == 200  # the registry must not retry it forever
    assert response.json() == {"received": 1, "recorded": 0, "ignored": 0, "rejected": 1}
    assert primary.last_event_id() == before


@pytest.mark.parametrize(
    ("field", "value"),
    [("tag", t) for t in HOSTILE_TAGS] + [("digest", d) for d in HOSTILE_DIGESTS],
)
def test_hostile_tags_and_digests_are_rejected(primary: Primary, field: str, value: str) -> None:
    push = distribution_event("push", unique_repository(), tag="v1")
    push["target"][field] = value

    assert primary.notify(envelope(push)).json()["rejected"] == 1


def test_one_bad_event_does_not_spoil_the_others(primary: Primary) -> None:
    good = distribution_event("push", unique_repository(), tag="v1")
    bad = distribution_event("push", "../etc", tag="v1")

    response = primary.notify(envelope(bad, good, 42, None, "push"))

    assert response.json() == {"received": 5, "recorded": 1, "ignored": 0, "rejected": 4}


def test_a_name_built_to_make_a_regex_backtrack_is_answered_quickly(primary: Primary) -> None:
    """`[-]*` in Distribution's grammar backtracks exponentially in Python's engine."""
    names = ["a" * 254 + "!", "a-" * 120 + "!", "a" + "-a" * 120 + "_", "a." * 120 + "A"]
    pushes = [distribution_event("push", "group/app", tag="v1") for _ in names]
    for push, name in zip(pushes, names, strict=True):
        push["target"]["repository"] = name

    with primary.client(timeout=5) as client:
        response = client.post(
            NOTIFY,
            content=json.dumps(envelope(*pushes)),
            headers={"Authorization": primary.secret, "Content-Type": V1},
        )

    assert response.json()["rejected"] == len(names)


@pytest.mark.parametrize("opener", ["[", '{"events":', '{"a":[{"b":'])
def test_deeply_nested_json_is_a_400(primary: Primary, opener: str) -> None:
    depth = min(100_000, MAX_BODY_BYTES // len(opener))  # as deep as fits under the limit
    response = primary.notify((opener * depth).encode())

    assert response.status_code == 400
    assert response.json() == {"error": "body is nested too deeply"}


def test_an_honest_body_over_one_mib_is_a_413(primary: Primary) -> None:
    response = primary.notify(b" " * (MAX_BODY_BYTES + 1))

    assert response.status_code == 413


def test_a_body_of_exactly_one_mib_is_read(primary: Primary) -> None:
    body = json.dumps(envelope()).encode()
    response = primary.notify(body + b" " * (MAX_BODY_BYTES - len(body)))

    assert response.status_code == 200


def test_a_chunked_body_over_one_mib_is_a_413(primary: Primary) -> None:
    """No Content-Length: the limit must hold while the stream is read."""
    before = primary.last_event_id()
    push = json.dumps(envelope(distribution_event("push", unique_repository(), tag="v1")))

    def chunks() -> Iterator[bytes]:
        yield push[:-1].encode() + b","  # a valid start, then padding inside the object
        yield b'"padding": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    with primary.client() as client:
        response = client.post(
            NOTIFY, content=chunks(), headers={"Authorization": primary.secret, "Content-Type": V1}
        )

    assert response.status_code == 413
    assert primary.last_event_id() == before


def raw_request(primary: Primary, head: bytes, body: bytes = b"") -> bytes:
    """Send bytes no polite client would, and return whatever comes back."""
    port = int(primary.url.rsplit(":", 1)[1])
    reply = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        # The server may answer and close before it takes the whole body, or reset after.
        with contextlib.suppress(OSError):
            sock.sendall(head + body)
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                reply += chunk
    return reply


def request_head(primary: Primary, *headers: str) -> bytes:
    lines = [
        f"POST {NOTIFY} HTTP/1.1",
        "Host: localhost",
        f"Content-Type: {V1}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def status_of(reply: bytes) -> int | None:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", reply)
    return int(match.group(1)) if match else None


def test_a_content_length_that_lies_low_with_a_chunked_body_never_gets_past_the_limit(
    primary: Primary,
) -> None:
    before = primary.last_event_id()
    chunk = b"x" * 0x100000
    body = b"100000\r\n" + chunk + b"\r\n" + b"100000\r\n" + chunk + b"\r\n0\r\n\r\n"
    head = request_head(
        primary,
        f"Authorization: {primary.secret}",
        "Content-Length: 20",
        "Transfer-Encoding: chunked",
    )

    reply = raw_request(primary, head, body)

    assert status_of(reply) in (None, 400, 413)
    assert primary.last_event_id() == before


def test_a_content_length_that_lies_low_reads_only_what_it_declares(primary: Primary) -> None:
    before = primary.last_event_id()
    push = json.dumps(envelope(distribution_event("push", unique_repository(), tag="v1")))
    head = request_head(primary, f"Authorization: {primary.secret}", "Content-Length: 10")

    reply = raw_request(primary, head, push.encode() + b" " * (2 * MAX_BODY_BYTES))

    assert status_of(reply) == 400
    assert primary.last_event_id() == before


def test_a_content_length_that_lies_high_is_refused_without_reading(primary: Primary) -> None:
    head = request_head(primary, f"Authorization: {primary.secret}", "Content-Length: 999999999")

    reply = raw_request(primary, head, b'{"events": []}')

    assert status_of(reply) == 413


@pytest.mark.parametrize(
    "authorization",
    [
        ["Authorization: {secret}", "Authorization: {secret}"],  # twice, even if both right
        ["Authorization: {secret}", "Authorization: wrong"],
        ["Authorization: wrong", "Authorization: {secret}"],
        ["Authorization: s\xe9cr\xeat\xff"],  # bytes that are not UTF-8
    ],
)
def test_odd_authorization_headers_are_refused(primary: Primary, authorization: list[str]) -> None:
    before = primary.last_event_id()
    body = json.dumps(envelope(distribution_event("push", unique_repository(), tag="v1")))
    headers = [h.format(secret=primary.secret) for h in authorization]
    head = request_head(primary, *headers, f"Content-Length: {len(body)}")

    reply = raw_request(primary, head, body.encode())

    assert status_of(reply) == 401
    assert primary.last_event_id() == before


def test_urls_in_events_are_never_fetched(primary: Primary) -> None:
    """Distribution puts a URL in every event; following it would let anyone who can post a
    notification make the primary connect anywhere."""
    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen(8)
        trap.settimeout(1.0)
        url = f"http://127.0.0.1:{trap.getsockname()[1]}/v2/group/app/manifests/{DIGEST}"
        events = [
            distribution_event("push", unique_repository(), tag="v1"),
            distribution_event("delete", unique_repository(), media_type=None),
            distribution_event("push", unique_repository(), media_type=OCI_MANIFEST),
        ]
        for event in events:
            event["target"]["url"] = url
            event["request"]["host"] = url
            event["source"]["addr"] = url

        response = primary.notify(envelope(*events))
        primary.events(wait=0)

        assert response.json()["recorded"] == 3
        with pytest.raises(TimeoutError):
            trap.accept()


def test_the_event_api_survives_odd_queries(primary: Primary) -> None:
    bearer = {"Authorization": f"Bearer {primary.token}"}
    with primary.client() as client:
        for query in ["after=%ff%fe", "after=٣", "after=1_0", "limit=" + "9" * 5000, "after=-0"]:
            response = client.get(f"/api/v4/geo/events?{query}", headers=bearer)
            assert response.status_code in (200, 400), (query, response.text)


# --- The app in-process, for volume -------------------------------------------------------


Post = Callable[[bytes, dict[str, str]], httpx.Response]


@pytest.fixture(scope="module")
def app_post(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Post, EventLog]]:
    """POST to the app in this process through httpx's ASGI transport: thousands of
    requests in seconds, with any exception in the app raised here instead of a 500."""
    root: Path = tmp_path_factory.mktemp("asgi")
    settings = in_process_primary_settings(root, SECRET, TOKEN)
    app = create_app(settings)
    log = app.state.service.log
    transport = httpx.ASGITransport(app=app)
    with anyio.from_thread.start_blocking_portal() as portal:
        client = httpx.AsyncClient(transport=transport, base_url="http://primary")

        def post(body: bytes, headers: dict[str, str]) -> httpx.Response:
            return portal.call(
                functools.partial(client.post, NOTIFY, content=body, headers=headers)
            )

        yield post, log
        portal.call(client.aclose)
    log.close()


_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
MANIFEST_TYPES = [
    OCI_MANIFEST,
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
]
OTHER_TYPES = [
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.docker.container.image.v1+json",
    "application/octet-stream",
]

valid_repositories = st.from_regex(rf"{_COMPONENT}(?:/{_COMPONENT}){{0,2}}", fullmatch=True).filter(
    lambda name: len(name) <= 255
)
valid_tags = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", fullmatch=True)
valid_digests = st.text("0123456789abcdef", min_size=64, max_size=64).map(lambda h: f"sha256:{h}")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
valid_events = st.builds(
    lambda event_id, action, repository, tag, digest, media_type: {
        "id": event_id,
        "action": action,
        "target": {"repository": repository, "tag": tag, "digest": digest, "mediaType": media_type},
    },
    st.uuids().map(str),
    st.sampled_from(["push", "delete"]),
    valid_repositories,
    st.none() | valid_tags,
    st.none() | valid_digests,
    st.sampled_from([None, *MANIFEST_TYPES]),
)
bad_event_fields = st.tuples(
    st.sampled_from(["id", "action", "target"]),
    st.sampled_from(["pull", "mount", "PUSH", ""]) | json_values,
)
bad_target_fields = st.tuples(
    st.sampled_from(["repository", "tag", "digest", "mediaType"]),
    st.sampled_from(HOSTILE_REPOSITORIES + HOSTILE_TAGS + HOSTILE_DIGESTS + OTHER_TYPES)
    | json_values,
)


def spoiled(event: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The event as it is, or with one field replaced by something hostile or off."""
    return st.one_of(
        st.just(event),
        bad_event_fields.map(lambda kv: {**event, kv[0]: kv[1]}),
        bad_target_fields.map(lambda kv: {**event, "target": {**event["target"], kv[0]: kv[1]}}),
    )


near_valid_events = valid_events.flatmap(spoiled)
envelopes = st.one_of(
    st.lists(near_valid_events, max_size=6).map(lambda events: {"events": events}),
    st.lists(near_valid_events | json_values, max_size=6).map(lambda events: {"events": events}),
    st.dictionaries(st.sampled_from(["events", "other"]), json_values, max_size=2),
    json_values,
)
bodies = st.one_of(envelopes.map(lambda value: json.dumps(value).encode()), st.binary(max_size=64))
# Mostly right, so that most examples get as far as the events.
content_types = st.sampled_from([V1] * 6 + ["application/json", V2, "text/plain"])
secrets_sent = st.sampled_from([SECRET] * 8 + ["", SECRET.upper()])


def plausible(raw: Any, event: Any) -> bool:
    """Whether `raw` could be the source of the recorded `event`: a deliberately plain,
    separate statement of what may ever enter the log."""
    if not isinstance(raw, dict) or not isinstance(raw.get("target"), dict):
        return False
    target = raw["target"]
    action = {"push": "updated", "delete": "deleted"}.get(str(raw.get("action")))
    return (
        isinstance(raw.get("id"), str)
        and isinstance(raw.get("action"), str)
        and action == event.action
        and target.get("repository") == event.repository
        and (target.get("tag") or None) == event.tag
        and (target.get("digest") or None) == event.digest
        and safe_repository(event.repository)
        and (event.tag is None or re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", event.tag))
        and (event.digest is None or re.fullmatch(r"[a-z0-9]+:[a-f0-9]+", event.digest))
    )


def safe_repository(name: str) -> bool:
    """What a path-safe repository name looks like, however the grammar is written."""
    parts = name.split("/")
    return (
        0 < len(name) <= 255
        and set(name) <= set("abcdefghijklmnopqrstuvwxyz0123456789._-/")
        and all(part and part[0].isalnum() and part[-1].isalnum() for part in parts)
        and ".." not in name
    )


@settings(
    max_examples=1000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(body=bodies, content_type=content_types, secret=secrets_sent)
def test_random_notifications_never_5xx_and_record_only_valid_events(
    app_post: tuple[Post, EventLog], body: bytes, content_type: str, secret: str
) -> None:
    post, log = app_post
    before = log.last_id()

    response = post(body, {"Authorization": secret, "Content-Type": content_type})

    assert response.status_code in (200, 400, 401, 413, 415)
    new = log.after(before, 1000)
    event(f"status {response.status_code}, {'some' if new else 'nothing'} recorded")
    if response.status_code != 200:
        assert new == []
        return
    counts = response.json()
    raw_events = json.loads(body)["events"]
    assert counts["received"] == len(raw_events)
    assert counts["recorded"] == len(new)
    assert counts["received"] == counts["recorded"] + counts["ignored"] + counts["rejected"]
    for recorded in new:
        assert any(plausible(raw, recorded) for raw in raw_events), recorded


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    repository=valid_repositories,
    tag=valid_tags,
    action=st.sampled_from(["push", "delete"]),
)
def test_every_valid_manifest_event_is_recorded(repository: str, tag: str, action: str) -> None:
    raw = {
        "id": str(uuid.uuid4()),
        "action": action,
        "target": {"repository": repository, "tag": tag, "digest": DIGEST},
    }

    decision = triage(raw)

    assert decision.outcome == "record", decision.reason
    assert decision.event is not None
    assert (decision.event.repository, decision.event.tag) == (repository, tag)


def test_the_repository_grammar_does_not_backtrack() -> None:
    started = time.monotonic()
    for name in ["a" * 254 + "!", "a-" * 126 + "!", "a" + "__a" * 80 + "-"]:
        assert not is_repository(name)
    assert time.monotonic() - started < 5  # exponential would be hours, not seconds


def _post_whole(primary: Primary, body: bytes) -> int | str:
    """POST `body` as a plain client does (send it all, then read); the status, or the
    error that stopped the exchange."""
    port = int(primary.url.rsplit(":", 1)[1])
    head = request_head(primary, f"Authorization: {primary.secret}", f"Content-Length: {len(body)}")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(head + body)
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
    except OSError as exc:  # BrokenPipeError, ConnectionResetError
        return type(exc).__name__
    return status_of(reply) or repr(reply[:80])


def test_a_two_mib_body_gets_its_413_every_time(primary: Primary) -> None:
    """Issue 13 #22: answered before the body was read, the 413 raced the client's upload
    and half the tries ended in a broken pipe instead of a status."""
    body = b" " * (2 * MAX_BODY_BYTES)
    assert [_post_whole(primary, body) for _ in range(20)] == [413] * 20
