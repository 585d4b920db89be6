"""One scratch project per fault module, set up by `invoke geo.setup`, destroyed after."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from faults_kit import Scratch, scratch_project


@pytest.fixture(scope="module")
def nodes_up(docker_client, tmp_path_factory: pytest.TempPathFactory, request) -> Iterator[Scratch]:
    """Both nodes of a scratch project, up and healthy; torn down with their data after.

    The container prefix is derived from the module name, so two fault modules never share
    containers and a failed run's leftovers are easy to recognise (`gdkgeo-f...`).
    """
    short = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:10]
    root = tmp_path_factory.mktemp(f"faults-{short}")
    prefix = f"gdkgeo-f{short.replace('_', '')}-{uuid.uuid4().hex[:4]}"
    with scratch_project(root, prefix) as scratch:
        scratch.must("geo.setup")
        yield scratch
