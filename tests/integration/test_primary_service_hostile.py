"""The primary Geo service against input nobody well-meaning would send, over real HTTP.

The rule under test: hostile input gets a 4xx (or a 200 that records nothing), never a
5xx, never a crash, never a recorded event that is not a valid manifest push or delete,
and never an outgoing connection to a URL taken from an event. Here a real server gets
hostile names, bodies, sizes and raw HTTP; random notifications against the app
in-process are in test_primary_service_fuzz.py.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
from collections.abc import Iterator

import pytest
from hostile_references import DIGEST, HOSTILE_DIGESTS, HOSTILE_REPOSITORIES, HOSTILE_TAGS
from primary_rig import (
    NOTIFY,
    OCI_MANIFEST,
    V1,
    Primary,
    distribution_event,
    envelope,
    start_primary,
    stop,
    unique_repository,
)

from gdk_geo.primary.app import MAX_BODY_BYTES

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
