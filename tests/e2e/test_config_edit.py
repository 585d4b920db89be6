"""geo.config.get/set through the real invoke CLI (no Docker).

The CLI masks secrets, refuses a port another listener has, and does not wrap piped output.
That `config_edit.set_value` keeps comments and key order and writes nothing it would refuse
to load is tests/unit/settings/test_config_edit.py; validation messages are test_config.py's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO_ROOT, invoke, write_gdk_yml

from gdk_geo.settings import config_edit


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


# -- A refused `set` (the function itself: tests/unit/settings/test_config_edit.py) -----

LONG_FILE = "# my settings\n" * 40 + "registry:\n  notifications:\n    timeout: 500ms\n"
AGAIN = "run `invoke geo.config.set {key} <value>` again, with "


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
