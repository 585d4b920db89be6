"""Real clients against a project with token auth: the Docker CLI, skopeo and curl.

Docker's own state stays in a scratch `DOCKER_CONFIG`, so the user's logins are untouched.
The image pushed is the registry image already in the engine (no pull is possible here),
retagged under a unique name and untagged afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import invoke, running_project
from registry_login import credentials, creds_argument

from gdk_geo.ops.login import registry_host
from gdk_geo.project import Project
from gdk_geo.runtime import containers as nodes
from testkit.images import make_image, write_oci_layout

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    with running_project(tmp_path_factory.mktemp("clients"), "k") as project:
        yield project


@pytest.fixture
def docker_env(tmp_path: Path) -> dict[str, str]:
    if shutil.which("docker") is None:
        pytest.skip("the docker CLI is not installed")
    return {**os.environ, "DOCKER_CONFIG": str(tmp_path / "docker-config")}


def _docker(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["docker", *args], env=env, input=stdin, capture_output=True, text=True, timeout=180
    )


def _host(project: Project, node: str) -> str:
    return registry_host(project.load(), node)


@pytest.fixture
def image(docker_client, project: Project) -> Iterator[str]:
    """`<primary>/clients/app-<id>:v1`, a tag of the registry image; untagged afterwards."""
    reference = f"{_host(project, 'primary')}/clients/app-{uuid.uuid4().hex[:8]}:v1"
    running = docker_client.containers.get(nodes.container_name(project.load(), "primary"))
    running.image.tag(reference)
    yield reference
    _untag(docker_client, reference)


def _untag(docker_client, reference: str) -> None:
    """Remove our tag only: the image keeps its other names (force: a running registry
    container uses the same image, which makes the engine refuse a plain untag)."""
    docker_client.images.remove(reference, force=True, noprune=True)


def _wait_synced(project: Project, repository: str) -> None:
    synced = invoke(project.root, "geo.sync", "--repo", repository)
    assert synced.returncode == 0, synced.stdout + synced.stderr


def test_geo_login_then_push_to_the_primary_and_pull_from_the_secondary(
    project: Project,
    docker_env: dict[str, str],
    image: str,
    docker_client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", docker_env["DOCKER_CONFIG"])
    login = invoke(project.root, "geo.login")
    assert login.returncode == 0, login.stdout + login.stderr
    assert f"logged in to {_host(project, 'secondary')}" in login.stdout
    stored = json.loads((Path(docker_env["DOCKER_CONFIG"]) / "config.json").read_text())
    assert set(stored["auths"]) >= {_host(project, "primary"), _host(project, "secondary")}

    pushed = _docker(docker_env, "push", image)
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    repository = image.split("/", 1)[1].rsplit(":", 1)[0]
    _wait_synced(project, repository)
    replica = image.replace(_host(project, "primary"), _host(project, "secondary"))
    pulled = _docker(docker_env, "pull", replica)
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr

    # The secondary is read-only for users, root included.
    other = replica.replace(repository, repository + "-copy")
    docker_client.images.get(replica).tag(other)
    refused = _docker(docker_env, "push", other)
    assert refused.returncode != 0
    assert "denied" in refused.stdout + refused.stderr
    _untag(docker_client, other)
    _untag(docker_client, replica)


def test_docker_login_with_the_password_on_stdin(
    project: Project, docker_env: dict[str, str]
) -> None:
    user, password = credentials(project)
    host = _host(project, "primary")
    good = _docker(docker_env, "login", "-u", user, "--password-stdin", host, stdin=password)
    assert good.returncode == 0, good.stderr
    bad = _docker(docker_env, "login", "-u", user, "--password-stdin", host, stdin="wrong" * 4)
    assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()


def test_an_anonymous_push_fails(project: Project, docker_env: dict[str, str], image: str) -> None:
    refused = _docker(docker_env, "push", image)
    assert refused.returncode != 0
    output = (refused.stdout + refused.stderr).lower()
    assert "unauthorized" in output or "denied" in output, output


def test_skopeo_copies_with_src_and_dest_creds(project: Project, tmp_path: Path) -> None:
    cfg = project.load()
    trust = str(project.trust_dir(cfg))
    primary = _host(project, "primary")
    layout = write_oci_layout(tmp_path / "layout", "v1", make_image())
    creds = creds_argument(project)

    def skopeo(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)

    anonymous = skopeo(
        "copy",
        "--dest-cert-dir",
        trust,
        f"oci:{layout}:v1",
        f"docker://{primary}/clients/skopeo:v1",
    )
    assert anonymous.returncode != 0

    def push_layout(destination: str) -> subprocess.CompletedProcess:
        """The layout's v1 pushed to `destination` as the registry user."""
        return skopeo(
            "copy",
            "--dest-cert-dir",
            trust,
            "--dest-creds",
            creds,
            f"oci:{layout}:v1",
            f"docker://{destination}",
        )

    pushed = push_layout(f"{primary}/clients/skopeo:v1")
    assert pushed.returncode == 0, pushed.stderr
    copied = skopeo(
        "copy",
        "--src-cert-dir",
        trust,
        "--src-creds",
        creds,
        "--dest-cert-dir",
        trust,
        "--dest-creds",
        creds,
        f"docker://{primary}/clients/skopeo:v1",
        f"docker://{primary}/clients/skopeo-copy:v1",
    )
    assert copied.returncode == 0, copied.stderr
    _wait_synced(project, "clients/skopeo-copy")
    secondary = _host(project, "secondary")
    inspected = skopeo(
        "inspect",
        "--cert-dir",
        trust,
        "--creds",
        creds,
        f"docker://{secondary}/clients/skopeo-copy:v1",
    )
    assert inspected.returncode == 0, inspected.stderr
    denied = push_layout(f"{secondary}/clients/skopeo:v2")
    assert denied.returncode != 0


def test_curl_with_a_token_from_jwt_auth(project: Project, tmp_path: Path) -> None:
    """GDK's registry how-to: a token from /jwt/auth, then the API with `Bearer`."""
    cfg = project.load()
    user, password = credentials(project)
    realm = f"{cfg.node('primary').service_url}/jwt/auth"
    netrc = tmp_path / "netrc"  # the password on no command line, curl's way
    netrc.write_text(f"machine {cfg.hostname} login {user} password {password}\n")
    netrc.chmod(0o600)
    answer = subprocess.run(
        [
            "curl",
            "-sf",
            "--netrc-file",
            str(netrc),
            f"{realm}?service=container_registry&scope=registry:catalog:*",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    token = json.loads(answer.stdout)["token"]
    header = tmp_path / "header"
    header.write_text(f"Authorization: Bearer {token}\n")
    catalog = subprocess.run(
        [
            "curl",
            "-sf",
            "--cacert",
            str(project.trust_dir(cfg) / "ca.crt"),
            "-H",
            f"@{header}",
            f"{cfg.node('primary').registry_url}/v2/_catalog",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert catalog.returncode == 0, catalog.stderr
    assert "repositories" in json.loads(catalog.stdout)
    anonymous = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
            str(project.trust_dir(cfg) / "ca.crt"),
            f"{cfg.node('primary').registry_url}/v2/_catalog",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert anonymous.stdout == "401"
