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
    with pytest.raises(ConfigError, match="again, with a TCP port number"):
        config_edit.set_value(path, "geo.primary.port", "99999")
    with pytest.raises(ConfigError, match="again, with a TCP port number"):
        config_edit.set_value(path, "geo.primary.port", "many")
    with pytest.raises(ConfigError, match=r"did you mean `geo\.primary\.port`"):
        config_edit.set_value(path, "geo.primary.prot", "3001")
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["gdk.yml"]  # no temp files left


# -- A refused `set`: the value was refused and gdk.yml left as it was ------------------------

LONG_FILE = "# my settings\n" * 40 + "registry:\n  notifications:\n    timeout: 500ms\n"
AGAIN = "run `invoke geo.config.set {key} <value>` again, with "


def _refused_set(path: Path, key: str, value: str) -> ConfigError:
    before = path.read_text()
    with pytest.raises(ConfigError) as raised:
        config_edit.set_value(path, key, value)
    assert path.read_text() == before
    return raised.value


def _is_a_refusal(error: ConfigError, key: str) -> None:
    """Says the value was refused and the file left as it was; no line of gdk.yml (it does
    not hold the value), no "edit gdk.yml": the fix is the command, run again."""
    assert error.what.startswith(f"geo.config.set refused {key}"), error.what
    assert error.what.endswith("; gdk.yml was left as it was"), error.what
    assert "gdk.yml:" not in str(error) and "not valid" not in error.what
    assert "edit gdk.yml" not in error.fix


def test_a_refused_value_is_named_as_refused_with_what_is_valid(tmp_path: Path) -> None:
    """`set ... 0s` said "gdk.yml:42 ... not valid" and "edit gdk.yml", having written nothing."""
    key = "registry.notifications.timeout"
    error = _refused_set(write_gdk_yml(tmp_path, LONG_FILE), key, "0s")
    _is_a_refusal(error, key)
    assert "'0s'" in error.what
    assert error.fix == AGAIN.format(key=key) + (
        'a positive duration such as "500ms", "1s", "2m" or "1h30m" (at most 2562047h)'
    )


@pytest.mark.parametrize(
    ("key", "value", "valid"),
    [
        ("geo.primary.port", "many", "a TCP port number from 1 to 65535"),
        ("geo.primary.port", "99999", "a TCP port number from 1 to 65535"),
        ("registry.auth_enabled", "maybe", "true or false"),
        ("hostname", "not a host", "a host name such as localhost or gdk.test"),
        ("registry.auth.password", "short-secret", "empty (generate one) or 16 to 256"),
        ("geo.registry_replication.max_concurrent_blobs", "0", "a whole number from 1 to"),
    ],
)
def test_every_refused_value_says_so(tmp_path: Path, key: str, value: str, valid: str) -> None:
    error = _refused_set(write_gdk_yml(tmp_path, LONG_FILE), key, value)
    _is_a_refusal(error, key)
    assert error.fix.startswith(AGAIN.format(key=key) + valid), error.fix
    if "secret" in key or "password" in key:
        assert value not in str(error)


def test_a_port_another_listener_has_is_a_refusal(tmp_path: Path) -> None:
    key = "geo.secondary.registry.port"
    error = _refused_set(write_gdk_yml(tmp_path, LONG_FILE), key, "5000")
    _is_a_refusal(error, key)
    assert "port 5000 is already geo.primary.registry.port's" in error.what
    assert error.fix.startswith(AGAIN.format(key=key) + "a port no other listener has")


def test_a_file_invalid_elsewhere_is_named_as_such(tmp_path: Path) -> None:
    """A valid value for one key, a file with a problem at another: the file's problems are
    listed with their lines, and the fix is to fix them first."""
    path = write_gdk_yml(tmp_path, "geo:\n  primary:\n    port: abc\n")
    error = _refused_set(path, "hostname", "gdk.test")
    assert "gdk.yml:3: geo.primary.port: got 'abc'" in error.what
    assert "geo.config.set left it as it was" in error.what
    assert error.fix.startswith("fix those first")
    config_edit.set_value(path, "geo.primary.port", "3101")  # setting that key mends it
    assert config_edit.get(path, "geo.primary.port") == 3101
