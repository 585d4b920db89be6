"""Shared fixtures: a Docker engine when one answers, free ports, a scratch project root."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nobody listens on right now (the OS picks it, so tests never use defaults)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def docker_client() -> Iterator[object]:
    """A docker SDK client, or a skip that says why when no engine answers."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # any failure to reach the engine means "no engine here"
        pytest.skip(f"no Docker engine answers ({exc}); run ../shared/ci/prepare-docker")
    yield client
    client.close()
