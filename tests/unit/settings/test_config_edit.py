"""config_edit.set_value: an edit keeps the user's gdk.yml as written, or writes nothing.

Comments and key order stay; a value gdk.yml would refuse to load is not written. Through
`invoke geo.config.get/set` (masked secrets, ports, piped output): tests/e2e/test_config_edit.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write_gdk_yml

from gdk_geo.errors import ConfigError
from gdk_geo.settings import config_edit


def test_set_keeps_comments_and_key_order(tmp_path: Path) -> None:
    original = (
        "# my gdk.yml\n"
        "hostname: localhost  # where I browse\n"
        "geo:\n"
        "  # the primary first\n"
        "  primary:\n"
        "    port: 3001\n"
        "  secondary:\n"
        "    port: 3002 # keep\n"
    )
    path = write_gdk_yml(tmp_path, original)
    config_edit.set_value(path, "geo.primary.port", "3101")
    assert path.read_text() == original.replace("port: 3001", "port: 3101")
    config_edit.set_value(path, "geo.secondary.registry_replication.enabled", "false")
    text = path.read_text()
    assert text.startswith(original.replace("port: 3001", "port: 3101"))
    assert "registry_replication:\n      enabled: false\n" in text


def test_invalid_set_writes_nothing(tmp_path: Path) -> None:
    path = write_gdk_yml(tmp_path, "geo:\n  primary:\n    port: 3001\n")
    before = path.read_text()
    with pytest.raises(ConfigError, match="expected a TCP port number"):
        config_edit.set_value(path, "geo.primary.port", "99999")
    with pytest.raises(ConfigError, match="expected a TCP port number"):
        config_edit.set_value(path, "geo.primary.port", "many")
    with pytest.raises(ConfigError, match=r"did you mean `geo\.primary\.port`"):
        config_edit.set_value(path, "geo.primary.prot", "3001")
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["gdk.yml"]  # no temp files left
