"""Shared fixtures: a Docker engine when one answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    """A docker SDK client, or a skip that says why when no engine answers."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure to reach the engine means "no engine here"
        pytest.skip(f"no Docker engine answers ({exc}); start Docker to run these tests")
    yield client
    client.close()


@pytest.fixture(scope="module")
def signing_key(tmp_path_factory: pytest.TempPathFactory):
    """The RSA key of a token signing pair made by `signing.ensure_signing_pair`."""
    from gdk_geo.pki import signing

    root = tmp_path_factory.mktemp("signing")
    signing.ensure_signing_pair(root, tmp_path_factory.mktemp("copy"))
    return signing.load_signing_key(root / "localhost.key")


@pytest.fixture
def chattr(tmp_path):
    """Paths a test makes immutable, made mutable again afterwards (tests/support/immutable.py)."""
    from immutable import immutable_paths

    yield from immutable_paths(tmp_path)


@pytest.fixture(scope="module")
def far_timezone() -> Iterator[None]:
    """Run this process, and the services it starts, in UTC+5:30."""
    import time

    from helpers import FAR_FROM_UTC

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TZ", FAR_FROM_UTC)
        time.tzset()
        yield
    time.tzset()
