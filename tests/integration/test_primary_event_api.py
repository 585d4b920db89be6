"""The primary Geo service as the secondary sees it: the event API, health, metrics, logs.

A real uvicorn process: the event API's token, paging and long polls, /-/health,
/-/metrics in Prometheus text, and a log that never holds the secret or the token.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import primary_rig
import pytest
from primary_rig import (
    EVENTS,
    Primary,
    distribution_event,
    envelope,
    metric,
    polls_waiting,
    unique_repository,
    wait_for_polls,
)
from prometheus_client.parser import text_string_to_metric_families

primary = primary_rig.primary  # the fixture, with a primary of this module's own


# --- The event API ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization", [None, "", "Bearer", "Bearer wrong", "{token}", "Bearer {token}x", "{secret}"]
)
def test_the_event_api_needs_the_node_token(primary: Primary, authorization: str | None) -> None:
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(token=primary.token, secret=primary.secret)

    with primary.client() as client:
        response = client.get(EVENTS, headers=headers)

    assert response.status_code == 401
    assert primary.token not in response.text


@pytest.mark.parametrize("query", ["after=abc", "limit=1.5", "wait=soon", "after=", "limit=1e3"])
def test_the_event_api_refuses_parameters_that_are_not_integers(
    primary: Primary, query: str
) -> None:
    with primary.client() as client:
        response = client.get(
            f"{EVENTS}?{query}", headers={"Authorization": f"Bearer {primary.token}"}
        )

    assert response.status_code == 400
    assert "integer" in response.json()["error"]


def test_the_event_api_pages_with_after_and_limit(primary: Primary) -> None:
    before = primary.last_event_id()
    pushes = [distribution_event("push", unique_repository(), tag=f"v{n}") for n in range(5)]
    primary.notify(envelope(*pushes))

    first = primary.events(after=before, limit=2)
    rest = primary.events(after=first["events"][-1]["id"], limit=100)

    assert [e["tag"] for e in first["events"]] == ["v0", "v1"]
    assert [e["tag"] for e in rest["events"]] == ["v2", "v3", "v4"]
    assert first["last_event_id"] == rest["last_event_id"] == before + 5


def test_out_of_range_parameters_are_clamped(primary: Primary) -> None:
    primary.notify(envelope(distribution_event("push", unique_repository(), tag="v1")))

    served = primary.events(after=-5, limit=100000, wait=-3)

    assert 1 <= len(served["events"]) <= 1000
    assert primary.events(after=10**19 - 1, limit=0)["events"] == []


def test_a_long_poll_returns_as_soon_as_a_push_is_recorded(primary: Primary) -> None:
    before = primary.last_event_id()
    push = distribution_event("push", unique_repository(), tag="v1")
    wait = 20

    with ThreadPoolExecutor(max_workers=1) as pool:
        started = time.monotonic()
        waiting = polls_waiting(primary)
        polled = pool.submit(primary.events, after=before, wait=wait)
        wait_for_polls(primary, waiting + 1)  # the poll reached the service and waits
        assert not polled.done()
        primary.notify(envelope(push))
        served = polled.result(timeout=wait + 5)
        elapsed = time.monotonic() - started

    assert [e["repository"] for e in served["events"]] == [push["target"]["repository"]]
    assert elapsed < wait


def test_a_long_poll_with_no_news_returns_empty_after_wait(primary: Primary) -> None:
    last = primary.last_event_id()
    started = time.monotonic()

    served = primary.events(after=last, wait=1)

    assert served.pop("log_id")  # which log the ids belong to (a cursor restarts on another)
    assert served == {"events": [], "last_event_id": last}
    assert time.monotonic() - started >= 0.9


def test_a_poll_with_events_waiting_returns_at_once(primary: Primary) -> None:
    primary.notify(envelope(distribution_event("push", unique_repository(), tag="v1")))

    served = primary.events(after=0, limit=1, wait=60)

    assert served["events"][0]["id"] == 1


# --- Health, metrics, logs ----------------------------------------------------------------


def test_health_reports_the_last_event_id(primary: Primary) -> None:
    with primary.client() as client:
        health = client.get("/-/health").json()

    assert health == {
        "status": "ok",
        "node": "primary",
        "last_event_id": primary.events()["last_event_id"],
    }


def test_metrics_count_what_notifications_carried(primary: Primary) -> None:
    names = {
        "received": "gdk_geo_registry_events_received_total",
        "recorded": "gdk_geo_registry_events_recorded_total",
        "ignored": "gdk_geo_registry_events_ignored_total",
        "rejected": "gdk_geo_registry_events_rejected_total",
    }
    before = {key: metric(primary, name) for key, name in names.items()}
    repository = unique_repository()
    primary.notify(
        envelope(
            distribution_event("push", repository, tag="v1"),
            distribution_event("pull", repository, tag="v1"),
            distribution_event("push", "Not/Valid", tag="v1"),
        )
    )

    after = {key: metric(primary, name) for key, name in names.items()}
    assert {key: after[key] - before[key] for key in names} == {
        "received": 3,
        "recorded": 1,
        "ignored": 1,
        "rejected": 1,
    }
    assert metric(primary, "gdk_geo_event_log_last_id") == primary.last_event_id()


def test_metrics_are_prometheus_text(primary: Primary) -> None:
    with primary.client() as client:
        response = client.get("/-/metrics")

    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    for name, kind in [
        ("gdk_geo_registry_events_received", "counter"),
        ("gdk_geo_registry_events_recorded", "counter"),
        ("gdk_geo_registry_events_ignored", "counter"),
        ("gdk_geo_registry_events_rejected", "counter"),
        ("gdk_geo_notifications_unauthorized", "counter"),
        ("gdk_geo_event_log_last_id", "gauge"),
    ]:
        family = families[name]
        assert (family.type, bool(family.documentation)) == (kind, True), name
        sample = f"{name}_total" if kind == "counter" else name
        assert [s.name for s in family.samples] == [sample]


def test_the_log_has_timestamps_and_never_the_secret_or_token(primary: Primary) -> None:
    primary.notify(envelope(distribution_event("push", unique_repository(), tag="v1")))
    primary.notify(envelope(), secret=primary.secret + "x")
    primary.notify(envelope(distribution_event("push", primary.secret, tag="v1")))
    with primary.client() as client:
        client.get(EVENTS, headers={"Authorization": f"Bearer {primary.token}x"})

    log = primary.log_text()
    assert "registry notification" in log
    assert "refused a registry notification" in log
    assert primary.secret not in log
    assert primary.token not in log
    assert log.splitlines()[0][:4].isdigit()  # a year
