"""Real clients against a project with token auth: the Docker CLI, skopeo and curl.

Docker's own state stays in a scratch `DOCKER_CONFIG`, so the user's logins are untouched.
The image pushed is the registry image already in the engine (no pull is possible here),
retagged under a unique name and untagged afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import pty
import select
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import invoke, running_project
from registry_login import credentials, creds_argument, skopeo_push_image

from gdk_geo.ops.login import registry_host
from gdk_geo.project import Project
from gdk_geo.runtime import containers
from testkit.images import make_image, write_oci_layout
from testkit.net import wait_for

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
    running = docker_client.containers.get(containers.container_name(project.load(), "primary"))
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
    _untag(docker_client, replica)


def test_a_push_to_the_secondary_is_denied_at_once(
    project: Project,
    docker_env: dict[str, str],
    image: str,
    docker_client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue #25.6: the secondary is read-only for users, root included. Its realm refused
    the push scope with 403, and Docker retried ("Retrying in N seconds") for about 50 s
    before saying `denied`; with a pull-only token the registry refuses the upload and
    Docker stops at its first `denied`."""
    monkeypatch.setenv("DOCKER_CONFIG", docker_env["DOCKER_CONFIG"])
    login = invoke(project.root, "geo.login")
    assert login.returncode == 0, login.stdout + login.stderr
    target = image.replace(_host(project, "primary"), _host(project, "secondary"))
    docker_client.images.get(image).tag(target)
    try:
        started = time.monotonic()
        refused = _docker(docker_env, "push", target)
        took = time.monotonic() - started
    finally:
        _untag(docker_client, target)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "denied: requested access to the resource is denied" in output, output
    assert "Retrying" not in output, output
    print(f"docker push to the secondary refused in {took:.2f} s:\n{output}")


def test_docker_login_with_the_password_on_stdin(
    project: Project, docker_env: dict[str, str]
) -> None:
    user, password = credentials(project)
    host = _host(project, "primary")
    good = _docker(docker_env, "login", "-u", user, "--password-stdin", host, stdin=password)
    assert good.returncode == 0, good.stderr
    # The realm answered docker login's offline_token=true with a refresh token, which
    # Docker keeps instead of the password.
    config = (Path(docker_env["DOCKER_CONFIG"]) / "config.json").read_text()
    assert json.loads(config)["auths"][host]["identitytoken"]
    assert password not in config and base64.b64encode(password.encode()).decode() not in config
    bad = _docker(docker_env, "login", "-u", user, "--password-stdin", host, stdin="wrong" * 4)
    assert bad.returncode != 0 and "unauthorized" in bad.stderr.lower()
    assert "invoke geo.login" in bad.stderr


def test_a_push_before_login_says_how_to_log_in(
    project: Project, docker_env: dict[str, str], image: str
) -> None:
    """Issue #25.7: Docker printed only the registry's `denied: requested access to the
    resource is denied`. The realm now refuses an anonymous scope with a 401 whose message
    Docker prints, and it names the fix."""
    refused = _docker(docker_env, "push", image)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr
    assert "unauthorized" in output and "invoke geo.login" in output, output


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


def test_skopeo_uses_the_refresh_token_docker_login_stored(
    project: Project, docker_env: dict[str, str], tmp_path: Path
) -> None:
    """After `docker login`, Docker's config holds a refresh token, not the password;
    skopeo (containers/image) posts it to the realm (`grant_type=refresh_token`, one
    `scope` field per scope) to pull from both nodes, and cannot push to the secondary."""
    user, password = credentials(project)
    for node in ("primary", "secondary"):
        host = _host(project, node)
        login = _docker(docker_env, "login", "-u", user, "--password-stdin", host, stdin=password)
        assert login.returncode == 0, login.stderr
    authfile = str(Path(docker_env["DOCKER_CONFIG"]) / "config.json")
    stored = json.loads(Path(authfile).read_text())["auths"]
    assert all(
        stored[_host(project, node)].get("identitytoken") for node in ("primary", "secondary")
    )
    skopeo_push_image(project, tmp_path, "clients/refreshed")
    _wait_synced(project, "clients/refreshed")
    trust = str(project.trust_dir(project.load()))

    def skopeo(*args: str) -> subprocess.CompletedProcess:
        command = ["skopeo", "--insecure-policy", *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=120)

    for node in ("primary", "secondary"):
        reference = f"docker://{_host(project, node)}/clients/refreshed:v1"
        inspected = skopeo("inspect", "--authfile", authfile, "--cert-dir", trust, reference)
        assert inspected.returncode == 0, inspected.stderr
    copied = skopeo(
        "copy",
        "--authfile",
        authfile,
        "--src-cert-dir",
        trust,
        "--dest-cert-dir",
        trust,
        f"docker://{_host(project, 'secondary')}/clients/refreshed:v1",
        f"docker://{_host(project, 'secondary')}/clients/refreshed:v2",
    )
    assert copied.returncode != 0 and "denied" in copied.stderr, copied.stderr


# -- containerd: its own daemon, here, so the engine's stays untouched -------------------------


@pytest.fixture(scope="module")
def containerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A containerd of its own (`containerd` and `ctr`, Debian's 1.6), on a socket in a
    scratch directory; stopped afterwards. Its address is yielded."""
    if not (shutil.which("containerd") and shutil.which("ctr")) or os.geteuid() != 0:
        pytest.skip("containerd and ctr are not installed, or this is not root")
    root = tmp_path_factory.mktemp("containerd")
    socket = root / "c.sock"
    config = root / "config.toml"
    config.write_text(
        f'version = 2\nroot = "{root}/root"\nstate = "{root}/state"\n'
        'disabled_plugins = ["io.containerd.grpc.v1.cri"]\n'
        f'[grpc]\n  address = "{socket}"\n[ttrpc]\n  address = "{socket}.ttrpc"\n'
        '[debug]\n  address = ""\n[metrics]\n  address = ""\n'
        f'[plugins."io.containerd.internal.v1.opt"]\n  path = "{root}/opt"\n'
    )
    with (root / "containerd.log").open("wb") as log:
        daemon = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log)
    try:
        wait_for(
            "containerd to serve",
            lambda: (
                subprocess.run(
                    ["ctr", "--address", str(socket), "version"], capture_output=True, timeout=10
                ).returncode
                == 0
            ),
            lambda: (root / "containerd.log").read_text(errors="replace"),
            timeout=30,
        )
        yield socket
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=15)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()


def _ctr(address: Path, password: str, *args: str) -> tuple[int, str]:
    """`ctr <args>` with `--user <name>` answered at its password prompt, which reads the
    terminal only (so a pty), never from a command line; returns its code and output."""
    leader, follower = pty.openpty()
    command = ["ctr", "--address", str(address), "-n", "gdkgeo", *args]
    process = subprocess.Popen(command, stdin=follower, stdout=follower, stderr=follower)
    os.close(follower)
    output, answered = b"", False
    try:
        while select.select([leader], [], [], 120)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: ctr exited and closed the terminal
                break
            if not chunk:
                break
            output += chunk
            if not answered and b"Password:" in output:
                os.write(leader, password.encode() + b"\n")
                answered = True
    finally:
        os.close(leader)
        code = process.wait(timeout=60)
    return code, output.decode(errors="replace").replace(password, "(password)")


def _hosts_dir(project: Project, directory: Path) -> Path:
    """containerd's hosts.toml per registry: HTTPS with the project's CA (containerd takes
    plain HTTP for `localhost` unless told)."""
    ca = project.trust_dir(project.load()) / "ca.crt"
    for node in ("primary", "secondary"):
        host = _host(project, node)
        (directory / host).mkdir(parents=True)
        (directory / host / "hosts.toml").write_text(
            f'server = "https://{host}"\n[host."https://{host}"]\n  ca = "{ca}"\n'
            '  capabilities = ["pull", "resolve", "push"]\n'
        )
    return directory


def test_ctr_gets_its_tokens_by_post_and_is_denied_a_push_to_the_secondary(
    project: Project, containerd: Path, tmp_path: Path
) -> None:
    """Issue #28 with a real containerd: it posts the OAuth2 form first, which the realm
    used to answer 405 (containerd 1.6 then fell back to GET, 2.2 no longer does on a
    404). Issue #25.6: `ctr push` to the secondary failed with "failed to fetch oauth
    token: unexpected status: 403"; now the registry refuses the pull-only token."""
    user, password = credentials(project)
    skopeo_push_image(project, tmp_path, "clients/ctr")
    _wait_synced(project, "clients/ctr")
    hosts = str(_hosts_dir(project, tmp_path / "hosts"))
    service_log = project.node(project.load(), "primary").service_log
    for node in ("primary", "secondary"):
        reference = f"{_host(project, node)}/clients/ctr:v1"
        code, output = _ctr(
            containerd,
            password,
            "content",
            "fetch",
            "--user",
            user,
            "--hosts-dir",
            hosts,
            reference,
        )
        assert code == 0, output
    assert '"POST /jwt/auth HTTP/1.1" 200' in service_log.read_text()  # its access log
    copy = f"{_host(project, 'secondary')}/clients/ctr-copy:v1"
    tagged = _ctr(
        containerd, password, "images", "tag", f"{_host(project, 'secondary')}/clients/ctr:v1", copy
    )
    assert tagged[0] == 0, tagged[1]
    code, output = _ctr(
        containerd, password, "images", "push", "--user", user, "--hosts-dir", hosts, copy
    )
    assert code != 0
    assert "insufficient_scope" in output and "403" not in output, output
