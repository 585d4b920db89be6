"""geo.reconfigure: golden renders, secrets, idempotence and hand-edit protection."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from helpers import FIXED_SECRETS, ports_yml, seed_secrets, write_gdk_yml
from ruamel.yaml import YAML

from gdk_geo.errors import GdkGeoError
from gdk_geo.node import settings as node_settings
from gdk_geo.ops import lifecycle
from gdk_geo.project import Project
from gdk_geo.project.secret_store import Secret, ensure_secrets, load_or_create

GOLDEN = Path(__file__).parent / "golden"
RENDERED = {
    "primary-config.yml": "primary/registry/config.yml",
    "primary-gitlab.yml": "primary/config/gitlab.yml",
    "secondary-config.yml": "secondary/registry/config.yml",
    "secondary-gitlab.yml": "secondary/config/gitlab.yml",
}


def _project(tmp_path: Path, text: str = "") -> Project:
    write_gdk_yml(tmp_path, text)
    seed_secrets(tmp_path)
    return Project(tmp_path)


def _reconfigure(project: Project, **kwargs) -> lifecycle.Reconfigured:
    # Port availability is tested through the CLI (tests/e2e/test_render.py); these tests
    # must not depend on which default ports happen to be free on the machine running them.
    return lifecycle.reconfigure(project, check_in_use=False, **kwargs)


@pytest.mark.parametrize("golden", sorted(RENDERED))
def test_golden_render(tmp_path: Path, golden: str) -> None:
    _reconfigure(_project(tmp_path))
    rendered = (tmp_path / ".gdk-geo" / RENDERED[golden]).read_text()
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / golden).write_text(rendered)
    assert rendered == (GOLDEN / golden).read_text()


def test_rendered_files_are_what_the_services_read(tmp_path: Path) -> None:
    _reconfigure(_project(tmp_path))
    data = tmp_path / ".gdk-geo"
    primary = node_settings.load_primary(data / "primary/config/gitlab.yml")
    assert primary.notification_secret == FIXED_SECRETS["notification_secret"]
    assert primary.node_token == FIXED_SECRETS["node_token"]
    assert primary.port == 3001 and primary.registry_api_url == "https://localhost:5000"
    assert primary.ca_file == data / "primary/registry_host.crt"
    secondary = node_settings.load_secondary(data / "secondary/config/gitlab.yml")
    assert secondary.primary_api_url == "https://localhost:5000"
    assert secondary.registry_api_url == "https://localhost:5001"
    assert secondary.primary_geo_url == "http://localhost:3001"
    assert secondary.node_token == primary.node_token
    assert secondary.backfill_interval == 60.0
    registry = YAML(typ="safe").load((data / "primary/registry/config.yml").read_text())
    endpoint = registry["notifications"]["endpoints"][0]
    assert endpoint["headers"]["Authorization"] == [primary.notification_secret]
    assert "notifications" not in YAML(typ="safe").load(
        (data / "secondary/registry/config.yml").read_text()
    )


def test_rendered_urls_are_the_derived_ones(tmp_path: Path) -> None:
    text = "hostname: gdk.test\n" + ports_yml(4101, 6100, 4102, 6101)
    cfg = _reconfigure(_project(tmp_path, text)).cfg
    data = tmp_path / ".gdk-geo"
    primary = node_settings.load_primary(data / "primary/config/gitlab.yml")
    secondary = node_settings.load_secondary(data / "secondary/config/gitlab.yml")
    assert primary.registry_api_url == cfg.node("primary").registry_url == "https://gdk.test:6100"
    assert secondary.registry_api_url == cfg.node("secondary").registry_url
    assert secondary.primary_geo_url == cfg.node("primary").service_url == "http://gdk.test:4101"
    assert secondary.primary_api_url == cfg.primary_api_url == "https://gdk.test:6100"
    for node in cfg.nodes:
        registry = YAML(typ="safe").load((data / node.name / "registry/config.yml").read_text())
        assert registry["http"]["host"] == node.registry_url
    primary_registry = YAML(typ="safe").load((data / "primary/registry/config.yml").read_text())
    endpoint = primary_registry["notifications"]["endpoints"][0]
    assert endpoint["url"] == cfg.node("primary").notification_url


def test_files_holding_secrets_are_private(tmp_path: Path) -> None:
    _reconfigure(_project(tmp_path))
    data = tmp_path / ".gdk-geo"
    for relative in [
        *RENDERED.values(),
        "primary/localhost.key",
        "secondary/localhost.key",
        "primary/registry_host.key",
        "secondary/registry_host.key",
        "secrets/node_token",
        "secrets/registry_password",
        "secrets/notification_secret",
    ]:
        assert stat.S_IMODE((data / relative).stat().st_mode) == 0o600, relative


def test_second_reconfigure_changes_nothing(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _reconfigure(project)
    files = [p for p in (tmp_path / ".gdk-geo").rglob("*") if p.is_file()]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    done = _reconfigure(project)
    assert {c.status for c in done.changes} == {"unchanged"}
    assert done.certificates.action == "reused"
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in files if p in before} == before


def test_change_prints_masked_diff_and_keeps_backup(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _reconfigure(project)
    write_gdk_yml(tmp_path, "geo:\n  primary:\n    port: 3101\n")
    done = _reconfigure(project)
    changed = {
        c.path.relative_to(tmp_path / ".gdk-geo").as_posix(): c
        for c in done.changes
        if c.status == "updated"
    }
    assert set(changed) == {
        "primary/registry/config.yml",
        "primary/config/gitlab.yml",
        "secondary/config/gitlab.yml",
    }
    diff = changed["primary/registry/config.yml"].diff
    assert "-      url: http://host.docker.internal:3001/" in diff
    assert "+      url: http://host.docker.internal:3101/" in diff
    for change in changed.values():
        for secret in FIXED_SECRETS.values():
            assert secret not in change.diff
        assert change.backup is not None and change.backup.exists()
        assert "3001" in change.backup.read_text()


def test_hand_edit_is_refused_then_forced(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _reconfigure(project)
    config_yml = tmp_path / ".gdk-geo/primary/registry/config.yml"
    config_yml.write_text(config_yml.read_text().replace("level: warn", "level: debug"))
    write_gdk_yml(tmp_path, "geo:\n  primary:\n    port: 3101\n")
    with pytest.raises(GdkGeoError, match="edited by hand") as raised:
        _reconfigure(project)
    assert str(config_yml) in str(raised.value) and "--force" in raised.value.fix
    assert "level: debug" in config_yml.read_text()
    # Nothing was half-written: the primary's gitlab.yml still has the old port too.
    assert "port: 3001" in (tmp_path / ".gdk-geo/primary/config/gitlab.yml").read_text()
    done = _reconfigure(project, force=True)
    backup = next(c.backup for c in done.changes if c.path == config_yml)
    assert backup is not None and "level: debug" in backup.read_text()
    assert "level: warn" in config_yml.read_text() and ":3101/" in config_yml.read_text()


def test_secret_is_generated_once_and_stays_private(tmp_path: Path) -> None:
    first = load_or_create(tmp_path / "secrets" / "token")
    second = load_or_create(tmp_path / "secrets" / "token")
    assert first == second and len(first.value) >= 32
    assert stat.S_IMODE((tmp_path / "secrets" / "token").stat().st_mode) == 0o600
    assert first.value not in repr(first) and first.value not in str(first)


def test_configured_notification_secret_wins(tmp_path: Path) -> None:
    secrets = ensure_secrets(tmp_path, "a-configured-secret-of-some-length")
    assert secrets.notification_secret == Secret("a-configured-secret-of-some-length")
    assert not (tmp_path / "notification_secret").exists()


def test_loosened_secret_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "token"
    load_or_create(path)
    path.chmod(0o644)
    load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _diffs(done: lifecycle.Reconfigured) -> str:
    return "".join(c.diff for c in done.changes)


def test_rotated_secrets_are_masked_old_and_new(tmp_path: Path) -> None:
    """Issue 13 #11: the old value of a rotated secret is in the diff's `-` lines; masking
    only the current secrets printed it in full."""
    user_secret = "a-user-set-notification-secret-42"
    project = _project(tmp_path, f"registry:\n  notification_secret: {user_secret}\n")
    _reconfigure(project)
    (tmp_path / ".gdk-geo/secrets/node_token").unlink()  # rotate the node token
    write_gdk_yml(tmp_path, "registry:\n  notification_secret: ''\n")  # back to generated
    done = _reconfigure(project)
    diffs = _diffs(done)
    assert "-  node_token: " in diffs and "+  notification_secret: " in diffs
    new = ensure_secrets(tmp_path / ".gdk-geo/secrets", "")
    for value in (user_secret, FIXED_SECRETS["node_token"], new.node_token.value):
        assert value not in diffs
    assert new.notification_secret.value not in diffs


def test_ipv6_listen_address_renders_valid_yaml(tmp_path: Path) -> None:
    """Issue 13 #12: `listen_address: ::1` rendered `addr: [::1]:5000` unquoted, which YAML
    reads as a list followed by garbage."""
    project = _project(tmp_path, 'listen_address: "::1"\n')
    _reconfigure(project)
    yaml = YAML(typ="safe")
    config_yml = yaml.load((tmp_path / ".gdk-geo/primary/registry/config.yml").read_text())
    gitlab_yml = yaml.load((tmp_path / ".gdk-geo/secondary/config/gitlab.yml").read_text())
    assert config_yml["http"]["addr"] == "[::1]:5000"
    assert gitlab_yml["gitlab"]["listen_address"] == "::1"
