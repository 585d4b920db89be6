"""gdk.yml validation as a user meets it: `invoke` on a scratch project (no Docker).

The errors without a traceback, the printed fix run as printed, and the refusals of
geo.sync and geo.destroy before they act. The messages themselves, through `config.load`,
are in tests/unit/settings/test_config.py.
"""

from __future__ import annotations

import re
from pathlib import Path

from helpers import api_url_refusal, invoke, ports_yml, promoted_project, write_gdk_yml

from gdk_geo.settings import config_edit
from testkit.net import free_port

API_URL = "geo.secondary.registry_replication.primary_api_url"


def test_cli_error_has_no_traceback_and_writes_nothing(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "geo:\n  primary:\n    port: abc\n")
    result = invoke(tmp_path, "geo.reconfigure")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert "gdk.yml:3: geo.primary.port: got 'abc'" in result.stderr
    assert not (tmp_path / ".gdk-geo").exists()


def test_cli_syntax_error(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "geo:\n\tprimary: 1\n")
    result = invoke(tmp_path, "geo.reconfigure")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "line 2, column 1" in result.stderr


def test_the_printed_fix_makes_gdk_yml_valid(tmp_path: Path) -> None:
    api_url_refusal(tmp_path, "http://localhost:5000")
    result = invoke(tmp_path, "geo.config.set", API_URL, "https://localhost:5000")
    assert result.returncode == 0, result.stdout + result.stderr
    assert config_edit.get(tmp_path / "gdk.yml", API_URL) == "https://localhost:5000"


def test_sync_with_replication_disabled_names_the_key_and_says_restart(tmp_path: Path) -> None:
    ports = "".join(
        f"  {node}:\n    port: {free_port()}\n    registry:\n      port: {free_port()}\n"
        for node in ("primary", "secondary")
    )
    write_gdk_yml(tmp_path, f"geo:\n{ports}  registry_replication:\n    enabled: false\n")
    assert invoke(tmp_path, "geo.reconfigure").returncode == 0
    result = invoke(tmp_path, "geo.sync", "--all")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "geo.secondary.registry_replication.enabled" in result.stderr
    assert "`invoke geo.restart`" in result.stderr and "reconfigure" not in result.stderr


def test_sync_refuses_a_secondary_rendered_to_sync_from_itself(tmp_path: Path) -> None:
    """An older release rendered such a primary_api_url; geo.sync must not copy the secondary
    onto itself and report success."""
    ports = [free_port() for _ in range(4)]
    write_gdk_yml(tmp_path, ports_yml(*ports))
    assert invoke(tmp_path, "geo.reconfigure").returncode == 0
    gitlab_yml = tmp_path / ".gdk-geo" / "secondary" / "config" / "gitlab.yml"
    text = gitlab_yml.read_text()
    own = f"https://localhost:{ports[3]}"
    gitlab_yml.write_text(re.sub(r"primary_api_url: .*", f"primary_api_url: {own}", text))
    result = invoke(tmp_path, "geo.sync", "--all")
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"primary_api_url ({own}) is its own registry" in result.stderr


def test_cli_data_dir_dev_null_has_no_traceback(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "data_dir: /dev/null\n")
    result = invoke(tmp_path, "geo.reconfigure")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "data_dir: " in result.stderr and "a kernel file system" in result.stderr
    assert "fix:" in result.stderr


def test_after_a_promotion_config_set_follows_the_roles(tmp_path: Path) -> None:
    promoted_project(tmp_path, "https://localhost:5001")
    refused = invoke(tmp_path, "geo.config.set", API_URL, "https://localhost:5000")
    assert refused.returncode == 1 and "own registry (node primary)" in refused.stderr
    assert "primary_api_url: https://localhost:5001" in (tmp_path / "gdk.yml").read_text()
    accepted = invoke(tmp_path, "geo.config.set", API_URL, "https://127.0.0.1:5001")
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    got = invoke(tmp_path, "geo.config.get", API_URL)
    assert got.stdout.strip() == "https://127.0.0.1:5001"


def test_destroy_without_a_terminal_to_ask_removes_nothing_and_says_how(tmp_path: Path) -> None:
    """`geo.destroy` in a script (stdin at its end) is not a yes, and no traceback."""
    write_gdk_yml(tmp_path, "")
    result = invoke(tmp_path, "geo.destroy")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "EOFError" not in result.stderr
    assert "nothing removed" in result.stdout
    assert "pass --yes to destroy without asking" in result.stderr
