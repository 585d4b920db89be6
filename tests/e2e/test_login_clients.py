"""`invoke geo.login --client …` without an engine (issue #28.2): the choice of client, a
missing command, and the ctr lines printed for containerd, which keeps no login. The logins
themselves run against real registries in test_client_matrix.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import FIXED_SECRETS, invoke, ports_yml, seed_secrets, write_gdk_yml

from testkit.net import free_ports


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A project with gdk.yml and its secrets, never set up: login needs neither."""
    write_gdk_yml(tmp_path, ports_yml(*free_ports(4)))
    seed_secrets(tmp_path)
    return tmp_path


def _path_with(tmp_path: Path, *commands: str) -> dict[str, str]:
    """An environment whose PATH holds only stubs of `commands` (each exits 0)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for command in commands:
        stub = bin_dir / command
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    return {**os.environ, "PATH": str(bin_dir)}


def test_an_unknown_client_is_an_error_listing_the_four(root: Path) -> None:
    result = invoke(root, "geo.login", "--client", "nerdctl")
    assert result.returncode == 1
    assert "unknown client 'nerdctl'" in result.stderr
    assert "docker, podman, containerd, skopeo" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("client", "command", "package"),
    [
        ("docker", "docker", "docker.io"),
        ("podman", "podman", "podman"),
        ("skopeo", "skopeo", "skopeo"),
        ("containerd", "ctr", "containerd"),
    ],
)
def test_a_missing_command_names_the_package_to_install(
    root: Path, tmp_path: Path, client: str, command: str, package: str
) -> None:
    result = invoke(root, "geo.login", "--client", client, env=_path_with(tmp_path))
    assert result.returncode == 1
    assert f"the {command} command is not installed" in result.stderr
    assert f"install {package}" in result.stderr
    assert "Traceback" not in result.stderr


def test_containerd_gets_the_ctr_lines_with_the_password_file_not_the_password(
    root: Path, tmp_path: Path
) -> None:
    result = invoke(root, "geo.login", "--client", "containerd", env=_path_with(tmp_path, "ctr"))
    assert result.returncode == 0, result.stderr
    assert FIXED_SECRETS["registry_password"] not in result.stdout + result.stderr
    trust = root / ".gdk-geo" / "trust" / "hosts.d"
    secret = root / ".gdk-geo" / "secrets" / "registry_password"
    flags = f'--hosts-dir {trust} --user "root:$(cat {secret})"'
    lines = [line.strip() for line in result.stdout.splitlines()]
    pushes = [line for line in lines if line.startswith("ctr images push ")]
    pulls = [line for line in lines if line.startswith("ctr images pull ")]
    assert len(pushes) == 1 and len(pulls) == 2, result.stdout
    assert all(flags in line for line in pushes + pulls), result.stdout
    assert "keeps no login" in result.stdout


def test_containerd_with_the_password_in_gdk_yml_asks_for_it(root: Path, tmp_path: Path) -> None:
    gdk_yml = root / "gdk.yml"
    gdk_yml.write_text(
        gdk_yml.read_text() + "registry:\n  auth:\n    password: hunter2-hunter2-hunter2\n"
    )
    result = invoke(root, "geo.login", "--client", "containerd", env=_path_with(tmp_path, "ctr"))
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout
    assert " --user root " in result.stdout
    assert "ctr asks for the password" in result.stdout


def test_login_with_auth_off_is_an_error(root: Path) -> None:
    gdk_yml = root / "gdk.yml"
    gdk_yml.write_text(gdk_yml.read_text() + "registry:\n  auth_enabled: false\n")
    result = invoke(root, "geo.login", "--client", "podman")
    assert result.returncode == 1
    assert "registry.auth_enabled is false" in result.stderr
