"""Both nodes in real Docker: setup, idempotence, restart, port change, errors, real clients.

One scratch project (its own container prefix and free ports, never the defaults) is set
up once for the module; the tests run in order against it and the last ones change it.
"""

from __future__ import annotations

import io
import json
import shutil
import socket
import ssl
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import invoke, ports_yml, unique_prefix, write_gdk_yml
from registry_login import RegistryLogin, creds_argument

from gdk_geo.project import Project
from gdk_geo.runtime import containers, health
from testkit.images import make_image, skopeo_push, write_oci_layout
from testkit.net import free_port

pytestmark = pytest.mark.docker

DOCKER_CLI = "/usr/bin/docker" if Path("/usr/bin/docker").exists() else shutil.which("docker")


def _container_start_times(project: Project) -> dict[str, str]:
    cfg = project.load()
    client = containers.engine()
    return {
        node: client.containers.get(containers.container_name(cfg, node)).attrs["State"][
            "StartedAt"
        ]
        for node in ("primary", "secondary")
    }


def _pids(project: Project) -> dict[str, int]:
    cfg = project.load()
    return {p.name: int(p.pidfile.read_text()) for p in project.nodes(cfg)}


@pytest.fixture(scope="module")
def first_setup(
    docker_client, tmp_path_factory
) -> Iterator[tuple[Project, subprocess.CompletedProcess]]:
    """`geo.setup` from nothing, once for the module: the project and what setup printed."""
    root = tmp_path_factory.mktemp("nodes")
    prefix = unique_prefix("t")
    write_gdk_yml(root, ports_yml(free_port(), free_port(), free_port(), free_port(), prefix))
    try:
        yield Project(root), invoke(root, "geo.setup")
    finally:
        invoke(root, "geo.destroy", "--yes", "--data")


@pytest.fixture
def project(first_setup) -> Project:
    project, result = first_setup
    assert result.returncode == 0, result.stdout + result.stderr
    return project


def test_setup_from_nothing(first_setup) -> None:
    project, result = first_setup
    assert result.returncode == 0, result.stdout + result.stderr
    assert "docker push localhost:" in result.stdout
    cfg = project.load()
    client = containers.engine()
    for node in ("primary", "secondary"):
        container = client.containers.get(containers.container_name(cfg, node))
        assert container.status == "running"
        assert container.labels[containers.LABEL_NODE] == node
        assert container.attrs["HostConfig"]["NetworkMode"] == "host"
        assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
        assert "host.docker.internal:127.0.0.1" in container.attrs["HostConfig"]["ExtraHosts"]
        assert "GOGC=400" in container.attrs["Config"]["Env"]
        paths = project.node(cfg, node)
        probe = health.probe_registry(cfg.node(node).registry_url, paths.certificate)
        assert probe.ok, probe.detail
        assert health.probe_service(cfg.node(node).service_url).ok


def test_setup_prints_its_steps_in_order(first_setup) -> None:
    """Issue 13 #26: "certificates: created" came after "waiting until ... healthy"."""
    _, result = first_setup
    lines = result.stdout.splitlines()

    def first(prefix: str) -> int:
        found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
        assert found, f"no line starting {prefix!r} in:\n{result.stdout}"
        return found[0]

    order = [
        first("certificates: created"),
        first("created: "),  # a rendered file
        first("starting the registry containers"),
        first("waiting until both nodes are healthy"),
        first("primary    registry "),  # the summary
    ]
    assert order == sorted(order), result.stdout


def test_registry_refuses_a_client_that_does_not_trust_our_ca(project: Project) -> None:
    cfg = project.load()
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{cfg.node('primary').registry_url}/v2/")  # system CAs only


def test_second_setup_is_a_no_op(project: Project) -> None:
    started, pids = _container_start_times(project), _pids(project)
    result = invoke(project.root, "geo.setup")
    assert result.returncode == 0, result.stderr
    assert _container_start_times(project) == started
    assert _pids(project) == pids
    assert "rendered files: unchanged" in result.stdout


def test_status_json(project: Project) -> None:
    result = invoke(project.root, "geo.status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    for node in ("primary", "secondary"):
        info = report["nodes"][node]
        assert info["container"]["state"] == "running"
        assert info["registry"]["healthy"] and info["service"]["healthy"]
        assert info["service"]["pid"] and info["certificate"]["days_left"] > 300
    table = invoke(project.root, "geo.status")
    assert table.returncode == 0 and "primary" in table.stdout and "✓" in table.stdout


def _push_with_skopeo(project: Project, tmp_path: Path, destination: str) -> None:
    layout = write_oci_layout(tmp_path / "layout", "v1", make_image())
    trust = project.trust_dir(project.load())
    skopeo_push(
        layout,
        "v1",
        destination,
        f"--dest-cert-dir={trust}",
        "--dest-creds",
        creds_argument(project),
    )


def _events(project: Project) -> list[dict]:
    cfg = project.load()
    token = (project.secrets_dir(cfg) / "node_token").read_text().strip()
    response = httpx.get(
        f"{cfg.node('primary').service_url}/api/v4/geo/events",
        params={"after": 0, "limit": 1000},
        headers={"Authorization": f"Bearer {token}"},
    )
    response.raise_for_status()
    return response.json()["events"]


def _wait_for_event(project: Project, repository: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in _events(project):
            if event["repository"] == repository:
                return event
        time.sleep(0.1)
    raise AssertionError(f"no Geo event for {repository}")


def test_skopeo_push_over_verified_tls_reaches_the_primary_service(
    project: Project, tmp_path: Path
) -> None:
    primary = project.load().node("primary").registry_address
    _push_with_skopeo(project, tmp_path, f"{primary}/group/skopeo:v1")
    event = _wait_for_event(project, "group/skopeo")
    assert event["action"] == "updated" and event["tag"] == "v1"
    # The service records only notifications whose Authorization header equals the secret,
    # and counts the others: a recorded event and zero refusals prove the header is right.
    metrics = httpx.get(f"{project.load().node('primary').service_url}/-/metrics").text
    assert "gdk_geo_notifications_unauthorized_total 0" in metrics


def _tiny_image_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        data = f"made by gdk-geo tests at {time.time()}\n".encode()
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _docker(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([DOCKER_CLI, *args], capture_output=True, timeout=60, **kwargs)


def _pulled_digest(reference: str) -> str:
    """Pull with the Docker CLI and return the digest Docker recorded for it."""
    pulled = _docker("pull", reference, text=True)
    assert pulled.returncode == 0, pulled.stderr
    inspect = _docker("image", "inspect", "--format", "{{json .RepoDigests}}", reference, text=True)
    repository = reference.rsplit(":", 1)[0]
    return next(d.split("@")[1] for d in json.loads(inspect.stdout) if d.startswith(repository))


def _wait_for_tag(project: Project, node: str, repository: str, tag: str) -> None:
    """Poll the node's registry (verified TLS) until the tag answers; replication is async."""
    cfg = project.load()
    url = f"{cfg.node(node).registry_url}/v2/{repository}/manifests/{tag}"
    accept = ", ".join(
        f"application/vnd.{kind}"
        for kind in ("docker.distribution.manifest.v2+json", "oci.image.manifest.v1+json")
    )
    verify = ssl.create_default_context(cafile=str(project.node(cfg, node).certificate))
    deadline = time.monotonic() + 30  # it takes well under a second (see bench/RESULTS.md)
    login = RegistryLogin.of(project)
    while httpx.head(url, headers={"Accept": accept}, verify=verify, auth=login).status_code != 200:
        assert time.monotonic() < deadline, f"{repository}:{tag} never reached the {node}"
        time.sleep(0.1)


def test_docker_cli_push_to_primary_pulls_from_secondary(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))  # not the user's
    login = invoke(project.root, "geo.login")
    assert login.returncode == 0, login.stdout + login.stderr
    cfg = project.load()
    primary = f"localhost:{cfg.geo.primary.registry.port}/group/cli:v1"
    secondary = f"localhost:{cfg.geo.secondary.registry.port}/group/cli:v1"
    _docker("import", "-", primary, input=_tiny_image_tar(), check=True)
    try:
        pushed = _docker("push", primary, text=True)
        assert pushed.returncode == 0, pushed.stderr
        pushed_digest = _pulled_digest(primary)
        _wait_for_tag(project, "secondary", "group/cli", "v1")
        assert _pulled_digest(secondary) == pushed_digest
    finally:
        _docker("rmi", primary, secondary)
    assert _wait_for_event(project, "group/cli")["tag"] == "v1"


def test_restart_restarts_both_and_waits_until_healthy(project: Project) -> None:
    started, pids = _container_start_times(project), _pids(project)
    result = invoke(project.root, "geo.restart")
    assert result.returncode == 0, result.stderr
    after = _container_start_times(project)
    assert all(after[node] != started[node] for node in after)
    assert all(_pids(project)[node] != pids[node] for node in pids)


def test_restart_one_node(project: Project) -> None:
    started = _container_start_times(project)
    result = invoke(project.root, "geo.restart", "--node", "secondary")
    assert result.returncode == 0, result.stderr
    after = _container_start_times(project)
    assert after["primary"] == started["primary"] and after["secondary"] != started["secondary"]


def test_a_container_from_before_the_registry_environment_is_recreated(
    project: Project,
) -> None:
    """An older gdk-geo made containers without GOGC: setup recreates them, once."""
    cfg = project.load()
    client = containers.engine()
    name = containers.container_name(cfg, "secondary")
    current = client.containers.get(name)
    attrs = current.attrs
    current.remove(force=True)
    client.containers.run(
        attrs["Config"]["Image"],
        command=attrs["Config"]["Cmd"],
        name=name,
        detach=True,
        network_mode="host",
        extra_hosts={"host.docker.internal": "127.0.0.1"},
        volumes=containers._volumes(project.node(cfg, "secondary")),
        user=attrs["Config"]["User"],
        labels=attrs["Config"]["Labels"],
    )
    result = invoke(project.root, "geo.setup")
    assert result.returncode == 0, result.stdout + result.stderr
    recreated = client.containers.get(name)
    assert "GOGC=400" in recreated.attrs["Config"]["Env"]
    assert recreated.attrs["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    again = invoke(project.root, "geo.setup")
    assert again.returncode == 0, again.stderr
    assert client.containers.get(name).id == recreated.id


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_port_change_serves_on_the_new_port_and_frees_the_old(project: Project) -> None:
    cfg = project.load()
    old, new = cfg.geo.secondary.registry.port, free_port()
    assert (
        invoke(project.root, "geo.config.set", "geo.secondary.registry.port", str(new)).returncode
        == 0
    )
    result = invoke(project.root, "geo.restart")
    assert result.returncode == 0, result.stderr
    cfg = project.load()
    assert health.probe_registry(
        f"https://localhost:{new}", project.node(cfg, "secondary").certificate
    ).ok
    assert not _listening(old)


def test_port_taken_is_the_documented_error(project: Project) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        invoke(project.root, "geo.config.set", "geo.primary.registry.port", str(taken))
        result = invoke(project.root, "geo.restart")
    assert result.returncode == 1
    assert "geo.primary.registry.port" in result.stderr and str(taken) in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_image_and_binary_name_both_ways_out(tmp_path: Path, docker_client) -> None:
    write_gdk_yml(
        tmp_path,
        ports_yml(free_port(), free_port(), free_port(), free_port(), "gdkgeo-noimage")
        + "registry:\n  image: gdk-geo/absent:never\n  binary: /nonexistent/registry\n",
    )
    result = invoke(tmp_path, "geo.setup")
    assert result.returncode == 1
    assert "gdk-geo/absent:never" in result.stderr and "/nonexistent/registry" in result.stderr
    assert "docker load" in result.stderr and "apt-get install docker-registry" in result.stderr
    assert "Traceback" not in result.stderr
    assert containers.find(docker_client, "gdkgeo-noimage-primary-registry") is None


def test_stop_keeps_data_and_destroy_removes_containers(project: Project) -> None:
    invoke(project.root, "geo.config.set", "geo.primary.registry.port", str(free_port()))
    assert invoke(project.root, "geo.restart").returncode == 0
    result = invoke(project.root, "geo.stop")
    assert result.returncode == 0, result.stderr
    cfg = project.load()
    storage = project.node(cfg, "primary").registry_storage
    assert any(storage.rglob("link"))  # pushed data is still there, readable by the user
    client = containers.engine()
    assert client.containers.get(containers.container_name(cfg, "primary")).status == "exited"
    assert invoke(project.root, "geo.destroy", "--yes").returncode == 0
    assert containers.find(client, containers.container_name(cfg, "primary")) is None
    assert any(storage.rglob("link"))
