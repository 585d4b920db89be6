"""Both realms in-process: the primary's (pull, push, delete) and a secondary's (pull)."""

from __future__ import annotations

import pytest
from realm_client import AsgiClient, realm_client

from gdk_geo.registry.token_service import SECONDARY_POLICY


@pytest.fixture
def primary(signing_key) -> AsgiClient:
    return realm_client(signing_key)


@pytest.fixture
def secondary(signing_key) -> AsgiClient:
    return realm_client(signing_key, SECONDARY_POLICY)
