"""geo.config.get/set: edits that keep the user's gdk.yml as written, through the real invoke CLI.

`config_edit.set_value` keeps comments and key order and writes nothing it would refuse to
load; the CLI masks secrets, refuses a port another listener has, and does not wrap piped
output. Validation messages themselves are in test_config.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import REPO_ROOT, invoke, write_gdk_yml

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


def test_cli_get_and_set(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "# mine\nhostname: localhost\n")
    assert invoke(tmp_path, "geo.config.get", "geo.primary.registry.port").stdout.strip() == "5000"
    result = invoke(tmp_path, "geo.config.set", "geo.primary.registry.port", "5005")
    assert result.returncode == 0, result.stderr
    assert invoke(tmp_path, "geo.config.get", "geo.primary.registry.port").stdout.strip() == "5005"
    assert (tmp_path / "gdk.yml").read_text().startswith("# mine\nhostname: localhost\n")
    bad = invoke(tmp_path, "geo.config.get", "geo.primary.regsitry.port")
    assert bad.returncode == 1 and "did you mean `geo.primary.registry.port`" in bad.stderr


def test_cli_get_and_set_mask_the_notification_secret(tmp_path: Path) -> None:
    """Issue 13 #11: `geo.config.get/set` echoed `registry.notification_secret` in full."""
    write_gdk_yml(tmp_path, "hostname: localhost\n")
    secret = "a-secret-nobody-may-read-0123"
    result = invoke(tmp_path, "geo.config.set", "registry.notification_secret", secret)
    assert result.returncode == 0, result.stderr
    assert "registry.notification_secret = a-se…(hidden)" in result.stdout
    got = invoke(tmp_path, "geo.config.get", "registry.notification_secret")
    assert got.returncode == 0 and got.stdout.strip() == "a-se…(hidden)"
    for output in (result, got):
        assert secret not in output.stdout + output.stderr


def test_set_refuses_a_port_another_listener_has(tmp_path: Path) -> None:
    """Issue 13 #17: `set` accepted a duplicate port and said to restart, which then failed."""
    path = write_gdk_yml(tmp_path, "geo:\n  primary:\n    port: 3101\n")
    before = path.read_text()
    result = invoke(tmp_path, "geo.config.set", "geo.secondary.registry.port", "3101")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "geo.restart" not in result.stdout
    assert "geo.primary.port" in result.stderr and "3101" in result.stderr
    assert path.read_text() == before
    config_edit.set_value(path, "geo.primary.port", "3102")  # a port of its own is fine
    assert config_edit.get(path, "geo.primary.port") == 3102


KEY = "registry.binary"


def test_output_is_not_wrapped_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    """Issue 13 #25: piped output wrapped at 80 columns, in the middle of paths and URLs."""
    write_gdk_yml(tmp_path, "hostname: localhost\n")
    binary = "/opt/" + "/".join(["a-rather-long-directory-name"] * 4) + "/docker-registry"
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    result = subprocess.run(
        [sys.executable, "-m", "invoke", "-r", str(REPO_ROOT), *("geo.config.set", KEY, binary)],
        capture_output=True,
        text=True,
        env={**env, "GDK_GEO_ROOT": str(tmp_path)},
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"{KEY} = {binary}  (run `invoke geo.restart`)\n" in result.stdout


# -- A refused `set`: the value was refused and gdk.yml left as it was (issue 25 #13) ---------

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


def test_the_cli_says_a_value_was_refused(tmp_path: Path) -> None:
    path = write_gdk_yml(tmp_path, LONG_FILE)
    key = "registry.notifications.timeout"
    result = invoke(tmp_path, "geo.config.set", key, "0s")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"geo.config.set refused {key}" in result.stderr
    assert "gdk.yml was left as it was" in result.stderr
    assert AGAIN.format(key=key) + "a positive duration" in result.stderr
    assert "edit gdk.yml" not in result.stderr and "gdk.yml:" not in result.stderr
    assert path.read_text() == LONG_FILE


def test_the_cli_leaves_no_gdk_yml_after_a_refused_first_set(tmp_path: Path) -> None:
    """The first `set` copies gdk.example.yml to gdk.yml; refused, it leaves none."""
    result = invoke(tmp_path, "geo.config.set", "geo.primary.port", "0")
    assert result.returncode == 1 and "gdk.yml was left as it was" in result.stderr
    assert not (tmp_path / "gdk.yml").exists()
