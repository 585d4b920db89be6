"""Fixtures of the end-to-end tests: projects brought up with `invoke geo.setup`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def nodes_up(tmp_path: Path) -> Iterator[object]:
    """`nodes_up(letter)` (two nodes) or `nodes_up(gdk_yml=...)`: a project set up with
    `geo.setup`, removed at teardown whatever happens (tests/failover_kit.py)."""
    from failover_kit import nodes_up_in

    yield from nodes_up_in(tmp_path)
