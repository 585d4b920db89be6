"""The primary Geo service as the registry sees it: notifications to a real uvicorn process.

What each Distribution notification records in the event log, and which ones are refused:
manifest pushes and deletes, layers and pulls, media types, redelivery, the secret.
The event API is in test_primary_event_api.py, the process in test_primary_process.py.
"""

from __future__ import annotations

import json
import time
import uuid

import primary_rig
import pytest
from primary_rig import (
    DOCKER_MANIFEST,
    LAYER,
    NOTIFY,
    OCI_MANIFEST,
    V1,
    V2,
    Primary,
    digest_of,
    distribution_event,
    envelope,
    metric,
    unique_repository,
)

primary = primary_rig.primary  # the fixture, with a primary of this module's own


# --- Notifications ------------------------------------------------------------------------


def test_a_tagged_manifest_push_is_recorded_and_served(primary: Primary) -> None:
    repository = unique_repository()
    before = primary.last_event_id()
    push = distribution_event("push", repository, tag="v1", media_type=DOCKER_MANIFEST)

    response = primary.notify(envelope(push))

    assert response.status_code == 200
    assert response.json() == {"received": 1, "recorded": 1, "ignored": 0, "rejected": 0}
    served = primary.events(after=before)
    assert served["last_event_id"] == before + 1
    [event] = served["events"]
    assert set(event) == {"id", "action", "repository", "tag", "digest", "created_at"}
    assert event["id"] == before + 1
    assert (event["action"], event["repository"], event["tag"]) == ("updated", repository, "v1")
    assert event["digest"] == push["target"]["digest"]
    assert abs(event["created_at"] - time.time()) < 60


def test_a_docker_push_records_the_manifest_and_ignores_layers_and_pulls(
    primary: Primary,
) -> None:
    """What `docker push` of a one-layer image sends: blob HEADs (pulls), the layer and
    config pushes, then the manifest push."""
    repository = unique_repository()
    before = primary.last_event_id()
    layer = distribution_event("push", repository, media_type=LAYER, digest=digest_of("layer"))
    head = distribution_event("pull", repository, media_type=LAYER, digest=digest_of("layer"))
    config = distribution_event(
        "push",
        repository,
        media_type="application/vnd.docker.container.image.v1+json",
        digest=digest_of("config"),
    )
    mount = distribution_event("mount", repository, media_type=LAYER, digest=digest_of("base"))
    manifest = distribution_event("push", repository, tag="latest", media_type=DOCKER_MANIFEST)
    manifest_pull = distribution_event("pull", repository, tag="latest")

    response = primary.notify(envelope(head, layer, config, mount, manifest, manifest_pull))

    assert response.json() == {"received": 6, "recorded": 1, "ignored": 5, "rejected": 0}
    [event] = primary.events(after=before)["events"]
    assert (event["repository"], event["tag"], event["action"]) == (repository, "latest", "updated")


def test_an_untagged_manifest_push_is_recorded_by_media_type(primary: Primary) -> None:
    """A multi-arch push sends each platform's manifest by digest, then the tagged index."""
    repository = unique_repository()
    before = primary.last_event_id()
    child = distribution_event("push", repository, media_type=OCI_MANIFEST)
    index = distribution_event(
        "push", repository, tag="v2", media_type="application/vnd.oci.image.index.v1+json"
    )

    assert primary.notify(envelope(child, index)).json()["recorded"] == 2

    events = primary.events(after=before)["events"]
    assert [(e["tag"], e["digest"]) for e in events] == [
        (None, child["target"]["digest"]),
        ("v2", index["target"]["digest"]),
    ]


def test_a_delete_by_digest_is_recorded_as_deleted(primary: Primary) -> None:
    """Distribution's manifest delete events carry the repository and digest only."""
    repository = unique_repository()
    before = primary.last_event_id()
    delete = distribution_event("delete", repository, media_type=None, digest=digest_of("gone"))

    assert primary.notify(envelope(delete)).json()["recorded"] == 1

    [event] = primary.events(after=before)["events"]
    assert (event["action"], event["tag"], event["digest"]) == ("deleted", None, digest_of("gone"))


def test_a_tag_delete_is_recorded(primary: Primary) -> None:
    repository = unique_repository()
    before = primary.last_event_id()
    delete = {"id": str(uuid.uuid4()), "action": "delete", "target": {"repository": repository}}
    delete["target"]["tag"] = "old"

    assert primary.notify(envelope(delete)).json()["recorded"] == 1
    [event] = primary.events(after=before)["events"]
    assert (event["action"], event["tag"], event["digest"]) == ("deleted", "old", None)


@pytest.mark.parametrize(
    "content_type", [V1, V2, "application/json", "application/json; charset=utf-8", V1.upper()]
)
def test_every_notification_media_type_is_accepted(primary: Primary, content_type: str) -> None:
    push = distribution_event("push", unique_repository(), tag="v1")

    response = primary.notify(envelope(push), content_type=content_type)

    assert response.status_code == 200
    assert response.json()["recorded"] == 1


def test_the_same_event_delivered_twice_is_recorded_once(primary: Primary) -> None:
    """Distribution retries until it sees a 2xx: at-least-once delivery."""
    push = distribution_event("push", unique_repository(), tag="v1")
    before = primary.last_event_id()

    first = primary.notify(envelope(push)).json()
    again = primary.notify(envelope(push)).json()

    assert first == {"received": 1, "recorded": 1, "ignored": 0, "rejected": 0}
    assert again == {"received": 1, "recorded": 0, "ignored": 1, "rejected": 0}
    assert primary.last_event_id() == before + 1


def test_an_event_without_an_id_is_rejected(primary: Primary) -> None:
    push = distribution_event("push", unique_repository(), tag="v1")
    del push["id"]
    before = primary.last_event_id()

    response = primary.notify(envelope(push))

    assert response.status_code == 200
    assert response.json() == {"received": 1, "recorded": 0, "ignored": 0, "rejected": 1}
    assert primary.last_event_id() == before


@pytest.mark.parametrize(
    "secret", [None, "", "wrong", "Bearer {secret}", "{secret}x", "{prefix}", "{upper}"]
)
def test_a_notification_without_the_exact_secret_is_refused(
    primary: Primary, secret: str | None
) -> None:
    before = primary.last_event_id()
    refused_before = metric(primary, "gdk_geo_notifications_unauthorized_total")
    headers = {"Content-Type": V1}
    if secret is not None:
        headers["Authorization"] = secret.format(
            secret=primary.secret, prefix=primary.secret[:-1], upper=primary.secret.upper()
        )
    body = json.dumps(envelope(distribution_event("push", unique_repository(), tag="v1")))

    with primary.client() as client:
        response = client.post(NOTIFY, content=body, headers=headers)

    assert response.status_code == 401
    assert primary.secret not in response.text
    assert primary.last_event_id() == before
    assert metric(primary, "gdk_geo_notifications_unauthorized_total") == refused_before + 1


@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "", "multipart/x"])
def test_a_notification_of_another_media_type_is_refused(
    primary: Primary, content_type: str
) -> None:
    before = primary.last_event_id()
    push = distribution_event("push", unique_repository(), tag="v1")

    response = primary.notify(envelope(push), content_type=content_type)

    assert response.status_code == 415
    assert primary.last_event_id() == before


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{\x00}\x00", "not UTF-8"),
        (b"[]", "not a JSON object"),
        (b'"events"', "not a JSON object"),
        (b"{}", "no `events` list"),
        (b'{"events": {"0": {}}}', "no `events` list"),
        (b"", "not valid JSON"),
    ],
)
def test_a_malformed_body_is_a_400_with_a_reason(
    primary: Primary, body: bytes, reason: str
) -> None:
    response = primary.notify(body)

    assert response.status_code == 400
    assert reason in response.json()["error"]


def test_an_empty_events_list_is_fine(primary: Primary) -> None:
    response = primary.notify(envelope())

    assert response.json() == {"received": 0, "recorded": 0, "ignored": 0, "rejected": 0}
