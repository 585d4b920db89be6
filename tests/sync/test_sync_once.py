"""`sync_once` (what `invoke geo.sync` runs) against real registries: what it records."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from gdk_geo.node_settings import SecondaryWorkerSettings
from gdk_geo.secondary.replicator import sync_once
from gdk_geo.secondary.tracking import TrackingDB

pytestmark = pytest.mark.docker


def worker_settings(registries, root: Path) -> SecondaryWorkerSettings:
    """A secondary's settings for the plain-HTTP test pair (no worker process runs)."""
    return SecondaryWorkerSettings(
        node_root=root,
        listen_address="127.0.0.1",
        port=0,
        primary_geo_url="http://127.0.0.1:1",  # sync_once never reads events
        node_token="unused-by-sync-once",
        registry_api_url=registries.secondary,
        ca_file=root / "localhost.crt",
        tracking_db_path=root / "geo" / "tracking.sqlite3",
        replication_enabled=True,
        primary_api_url=registries.primary,
        backfill_interval=60.0,
        verification_interval=300.0,
        max_concurrent_repositories=2,
        max_concurrent_blobs=2,
    )


def test_a_repository_neither_registry_knows_is_a_failure_and_not_recorded(
    registries, tmp_path: Path
) -> None:
    """Issue 13 #18: `geo.sync --repo does/not/exist` printed ✓ and added a "synced" row."""
    settings = worker_settings(registries, tmp_path)
    name = f"does/not/exist-{uuid.uuid4().hex[:8]}"
    [result] = asyncio.run(sync_once(settings, [name]))
    assert not result.ok
    assert result.error is not None and name in result.error
    db = TrackingDB(settings.tracking_db_path)
    try:
        assert db.get(name) is None
    finally:
        db.close()
