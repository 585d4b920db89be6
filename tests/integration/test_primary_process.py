"""The primary Geo service's process: start-up errors, SIGTERM, restarts, its settings.

Each test runs a primary of its own (`python -m gdk_geo.primary`) under its tmp_path.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from helpers import REPO_ROOT
from primary_rig import (
    distribution_event,
    envelope,
    start_primary,
    stop,
    wait_for_polls,
    write_gitlab_yml,
)

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import PrimaryServiceSettings
from gdk_geo.primary.app import create_app
from testkit.net import free_port

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
            wait_for_polls(primary, 1)  # the poll reached the service: SIGTERM must end it
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
