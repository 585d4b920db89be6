"""The primary Geo service's app in-process, against thousands of random notifications.

The rule under test is that of test_primary_service_hostile.py: never a 5xx, never a
recorded event that is not a valid manifest push or delete. The app runs in this process
for volume; the triage and the repository grammar are checked on their own too.
"""

from __future__ import annotations

import functools
import json
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio.from_thread
import httpx
import pytest
from fuzzing import examples
from helpers import in_process_primary_settings
from hostile_references import DIGEST, HOSTILE_DIGESTS, HOSTILE_REPOSITORIES, HOSTILE_TAGS
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from primary_rig import NOTIFY, OCI_MANIFEST, V1, V2

from gdk_geo.primary.app import create_app
from gdk_geo.primary.eventlog import EventLog
from gdk_geo.primary.triage import triage
from gdk_geo.registry.reference import is_repository

SECRET = "hostile-test-secret"
TOKEN = "hostile-test-token"


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
    max_examples=examples(1000),
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


@settings(max_examples=examples(150), deadline=None, suppress_health_check=[HealthCheck.too_slow])
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
