"""Shared fixtures: a Docker engine when one answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

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
def nodes_up(tmp_path: Path) -> Iterator[object]:
    """`nodes_up(letter)` (two nodes) or `nodes_up(gdk_yml=...)`: a project set up with
    `geo.setup`, removed at teardown whatever happens (tests/failover_kit.py)."""
    from failover_kit import nodes_up_in

    yield from nodes_up_in(tmp_path)
