"""`invoke geo.verify` queues what differs and says what repairs it (issue 13 #20)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from helpers import invoke, ports_yml, seed_secrets, write_gdk_yml

from gdk_geo.secondary.tracking import TrackingDB
from testkit.images import Pusher, make_image
from testkit.net import free_ports

pytestmark = pytest.mark.docker


def _project_on(registries, root: Path) -> Path:
    """A rendered project whose secondary reads the test pair: the rendered gitlab.yml is
    pointed at them, as its containers are not what this test is about."""
    write_gdk_yml(root, ports_yml(*free_ports(4)))
    seed_secrets(root)
    assert invoke(root, "geo.reconfigure").returncode == 0
    gitlab_yml = root / ".gdk-geo/secondary/config/gitlab.yml"
    text = gitlab_yml.read_text()
    for key, url in (("api_url", registries.secondary), ("primary_api_url", registries.primary)):
        start = text.index(f" {key}: ") + 1
        end = text.index("\n", start)
        text = text[:start] + f"{key}: {url}" + text[end:]
    gitlab_yml.write_text(text)
    # geo.verify compares with the primary registry itself, as the primary's gitlab.yml names it.
    primary_yml = root / ".gdk-geo/primary/config/gitlab.yml"
    text = primary_yml.read_text()
    start = text.index(" api_url: ") + 1
    end = text.index("\n", start)
    primary_yml.write_text(text[:start] + f"api_url: {registries.primary}" + text[end:])
    return root / ".gdk-geo/secondary/geo/tracking.sqlite3"


def test_verify_queues_the_differences_and_says_what_repairs_them(
    registries, tmp_path: Path
) -> None:
    repo = f"verify-task/app-{uuid.uuid4().hex[:8]}"

    async def push() -> None:
        async with Pusher(registries.secondary) as secondary:
            await secondary.image(repo, "rogue", make_image())

    asyncio.run(push())
    database = _project_on(registries, tmp_path)
    result = invoke(tmp_path, "geo.verify")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"✗ {repo}\n" in result.stdout
    assert "only on the secondary:    rogue" in result.stdout
    queued = next(line for line in result.stdout.splitlines() if line.startswith("queued"))
    assert repo in queued and "`invoke geo.sync --all` repairs them now" in queued
    db = TrackingDB(database)
    try:
        assert db.get(repo).state == "pending"
    finally:
        db.close()
    assert invoke(tmp_path, "geo.sync", "--repo", repo).returncode == 0
    after = invoke(tmp_path, "geo.verify")
    assert f"✗ {repo}\n" not in after.stdout
