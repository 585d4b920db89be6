"""The primary Geo service as the registry and the secondary see it: a real uvicorn process."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import REPO_ROOT
from prometheus_client.parser import text_string_to_metric_families

from gdk_geo.errors import GdkGeoError
from gdk_geo.node_settings import PrimaryServiceSettings
from gdk_geo.primary.app import create_app
from testkit.net import free_port

NOTIFY = "/api/v4/container_registry_event/events"
EVENTS = "/api/v4/geo/events"
V1 = "application/vnd.docker.distribution.events.v1+json"
V2 = "application/vnd.docker.distribution.events.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


# --- Running the service ----------------------------------------------------------------


def write_gitlab_yml(root: Path, port: int, secret: str, token: str) -> Path:
    """A primary's gitlab.yml in the shape templates/gitlab.yml.j2 renders."""
    config = root / "config" / "gitlab.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f"""\
gitlab:
  host: localhost
  port: {port}
  listen_address: 127.0.0.1

registry:
  enabled: true
  host: localhost
  port: 5000
  api_url: https://localhost:5000
  ca_file: localhost.crt
  notification_secret: {json.dumps(secret)}

geo:
  node_name: primary
  primary: true
  node_token: {json.dumps(token)}
  event_log:
    database: geo/events.sqlite3
"""
    )
    return config


def launch(config: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """`python -m gdk_geo.primary`, its stderr going to `log_file` as the tasks do."""
    with log_file.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "gdk_geo.primary", "--config", str(config)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Primary:
    """A running primary service and what a test needs to talk to it."""

    url: str
    secret: str
    token: str
    root: Path
    log_file: Path
    process: subprocess.Popen[bytes]

    def client(self, timeout: float = 30) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=timeout)

    def notify(
        self, envelope: Any, *, content_type: str = V1, secret: str | None = None
    ) -> httpx.Response:
        headers = {"Authorization": self.secret if secret is None else secret}
        headers["Content-Type"] = content_type
        body = envelope if isinstance(envelope, bytes) else json.dumps(envelope).encode()
        with self.client() as client:
            return client.post(NOTIFY, content=body, headers=headers)

    def events(self, after: int = 0, **params: Any) -> dict[str, Any]:
        with self.client() as client:
            response = client.get(
                EVENTS,
                params={"after": after, **params},
                headers={"Authorization": f"Bearer {self.token}"},
            )
        assert response.status_code == 200, response.text
        return response.json()

    def last_event_id(self) -> int:
        with self.client() as client:
            return client.get("/-/health").json()["last_event_id"]

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace")


def start_primary(root: Path) -> Primary:
    """Start a primary under `root` and wait until /-/health answers."""
    port = free_port()
    secret, token = f"notify-{secrets.token_hex(16)}", f"node-{secrets.token_hex(16)}"
    config = write_gitlab_yml(root, port, secret, token)
    log_file = root / "log" / "geo-primary.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    process = launch(config, log_file)
    primary = Primary(f"http://127.0.0.1:{port}", secret, token, root, log_file, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the primary service exited early:\n{primary.log_text()}")
        try:
            if httpx.get(f"{primary.url}/-/health", timeout=1).status_code == 200:
                return primary
        except httpx.TransportError:
            time.sleep(0.05)
    stop(process)
    pytest.fail(f"the primary service never answered /-/health:\n{primary.log_text()}")


@pytest.fixture(scope="module")
def primary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Primary]:
    """One primary shared by a module's tests; each test uses its own event ids."""
    running = start_primary(tmp_path_factory.mktemp("node") / "primary")
    yield running
    stop(running.process)


# --- Realistic Distribution envelopes -----------------------------------------------------


def digest_of(seed: str) -> str:
    return "sha256:" + uuid.uuid5(uuid.NAMESPACE_URL, seed).hex * 2


def distribution_event(
    action: str,
    repository: str,
    *,
    tag: str | None = None,
    media_type: str | None = OCI_MANIFEST,
    digest: str | None = None,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An event as Distribution's notification bridge writes it (fields from its docs)."""
    digest = digest or digest_of(f"{repository}:{tag}:{action}")
    target: dict[str, Any] = {
        "digest": digest,
        "size": 527,
        "length": 527,
        "repository": repository,
        "url": f"http://localhost:5000/v2/{repository}/manifests/{digest}",
    }
    if media_type:
        target["mediaType"] = media_type
    if tag:
        target["tag"] = tag
    return {
        "id": event_id or str(uuid.uuid4()),
        "timestamp": "2024-11-27T10:00:00.123456789Z",
        "action": action,
        "target": target,
        "request": {
            "id": str(uuid.uuid4()),
            "addr": "127.0.0.1:41234",
            "host": "localhost:5000",
            "method": "PUT" if action == "push" else "GET",
            "useragent": "docker/27.3.1 go/go1.22.7",
        },
        "actor": {},
        "source": {"addr": "localhost:5000", "instanceID": str(uuid.uuid4())},
    }


def envelope(*events: dict[str, Any]) -> dict[str, Any]:
    return {"events": list(events)}


def unique_repository(prefix: str = "group") -> str:
    return f"{prefix}/app-{uuid.uuid4().hex[:12]}"


def metric(primary: Primary, name: str) -> float:
    """One sample of /-/metrics, read with Prometheus' own parser."""
    with primary.client() as client:
        text = client.get("/-/metrics").text
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    assert name in samples, f"{name} not in /-/metrics:\n{text}"
    return samples[name]


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
        polled = pool.submit(primary.events, after=before, wait=wait)
        time.sleep(0.3)  # let the poll reach the server and start waiting
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


# --- Process lifecycle --------------------------------------------------------------------


def test_an_empty_secret_exits_with_one_clear_line(tmp_path: Path) -> None:
    config = write_gitlab_yml(tmp_path / "primary", free_port(), "", "token")

    result = subprocess.run(
        [sys.executable, "-m", "gdk_geo.primary", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "notification_secret is empty" in lines[0]
    assert "Traceback" not in result.stderr


def test_a_missing_config_exits_with_one_clear_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "gdk_geo.primary", "--config", str(tmp_path / "no.yml")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "does not exist" in result.stderr


def test_sigterm_ends_long_polls_and_stops_promptly(tmp_path: Path) -> None:
    primary = start_primary(tmp_path / "primary")
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            polled = pool.submit(primary.events, after=0, wait=60)
            time.sleep(0.3)
            started = time.monotonic()
            primary.process.send_signal(signal.SIGTERM)
            served = polled.result(timeout=10)
            returncode = primary.process.wait(timeout=10)
            stopped_in = time.monotonic() - started
    finally:
        stop(primary.process)

    assert served.pop("log_id")
    assert served == {"events": [], "last_event_id": 0}
    assert returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once shut down
    assert stopped_in < 5  # not the 60 s the poll asked for
    assert "event log closed" in primary.log_text()
    assert "Traceback" not in primary.log_text()


def test_events_survive_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "primary"
    first = start_primary(root)
    try:
        first.notify(envelope(distribution_event("push", "group/app", tag="v1", event_id="e-1")))
    finally:
        stop(first.process)

    second = start_primary(root)
    try:
        served = second.events()
        again = second.notify(
            envelope(distribution_event("push", "group/app", tag="v1", event_id="e-1"))
        )
    finally:
        stop(second.process)

    assert [(e["id"], e["tag"]) for e in served["events"]] == [(1, "v1")]
    assert again.json()["recorded"] == 0


@pytest.mark.parametrize("empty", ["notification_secret", "node_token"])
def test_create_app_refuses_an_empty_secret_or_token(tmp_path: Path, empty: str) -> None:
    """Settings built by hand skip load_primary's check; an empty expected value would let an
    empty Authorization header through."""
    values = {"notification_secret": "secret", "node_token": "token", empty: ""}
    settings = PrimaryServiceSettings(
        node_root=tmp_path,
        listen_address="127.0.0.1",
        port=free_port(),
        event_log_path=tmp_path / "geo" / "events.sqlite3",
        registry_api_url="https://localhost:5000",
        ca_file=tmp_path / "localhost.crt",
        **values,
    )

    with pytest.raises(GdkGeoError, match="is empty"):
        create_app(settings)
