"""The registry image step tries a failing pull once, and again only on `geo.image --pull`."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from gdk_geo.runtime.image import OFFLINE_IMAGE, Step, ensure_registry_image, failed_pulls

BINARY = Path("/usr/bin/docker-registry")


@pytest.mark.docker
def test_a_failed_pull_is_recorded_and_retried_only_when_asked(docker_client) -> None:
    """Issue 13 #24: every `geo.setup` tried `docker pull` again although the offline image
    was built and current. A name no registry serves stands for any unpullable image."""
    if not BINARY.is_file():
        pytest.skip(f"no registry binary at {BINARY} to build the offline image from")
    image = f"gdk-geo-test/never-pullable-{uuid.uuid4().hex[:8]}:1"

    def attempt(**kwargs) -> tuple[str, bool]:
        steps: list[Step] = []
        result = ensure_registry_image(docker_client, image, BINARY, steps.append, **kwargs)
        assert result.name == OFFLINE_IMAGE and result.how == "built offline"
        return result.name, any(s.message == f"pulling {image}" for s in steps)

    assert attempt() == (OFFLINE_IMAGE, True)  # the first time: tried, failed, recorded
    assert image in failed_pulls(docker_client)
    assert attempt() == (OFFLINE_IMAGE, False)  # not tried again
    assert attempt(pull=True) == (OFFLINE_IMAGE, True)  # `geo.image --pull`
    assert attempt() == (OFFLINE_IMAGE, False)
