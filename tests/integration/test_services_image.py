"""The Geo services' image: built offline FROM scratch, named by a digest of what it holds,
and copied to another Docker engine (a site) by `docker save | docker load`."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator

import pytest
from helpers import REPO_ROOT
from sites import site_up

from gdk_geo.errors import GdkGeoError
from gdk_geo.runtime import services_image
from gdk_geo.runtime.image import Step
from gdk_geo.runtime.services_image import (
    BASE_REPOSITORY,
    DIGEST_LABEL,
    base_digest,
    copy_image,
    ensure_services_image,
    service_command,
    services_digest,
)

# What a service loads at start, and the libraries its TLS and tokens stand on.
IMPORT_CHECK = (
    "import gdk_geo.primary.app, gdk_geo.secondary.worker, gdk_geo.secondary.web, "
    "cryptography, jwt; print('imports ok')"
)
PREFIX = f"gdkgeo-svcimage-test-{uuid.uuid4().hex[:8]}"
# A Docker engine in a network namespace of its own: "another host" on this machine.
SITE = 7  # this test's own site


@pytest.fixture
def run_in():
    """`run_in(client, image, command)`: run a container with host networking to its end,
    return (exit code, output); every container it made is removed at teardown."""
    made = []

    def run(client, image: str, command: list[str]) -> tuple[int, str]:
        container = client.containers.run(
            image, command=command, name=f"{PREFIX}-{len(made)}", detach=True, network_mode="host"
        )
        made.append(container)
        status = container.wait(timeout=120)
        return status["StatusCode"], container.logs().decode(errors="replace")

    yield run
    for container in made:
        with contextlib.suppress(Exception):
            container.remove(force=True)


@pytest.fixture(scope="module")
def site() -> Iterator[object]:
    """A client of site 7's engine (`prepare-site up 7`), taken down again afterwards."""
    docker = pytest.importorskip("docker")
    up = site_up(SITE)
    try:
        client = docker.DockerClient(base_url=up.docker_host)
        yield client
        client.close()
    finally:
        up.down()


@pytest.mark.docker
def test_the_image_runs_the_services_and_is_built_once(docker_client, run_in) -> None:
    steps: list[Step] = []
    name = ensure_services_image(docker_client, steps.append)
    assert re.fullmatch(r"gdk-geo/services:[0-9a-f]{12}", name)
    image = docker_client.images.get(name)
    assert image.labels[DIGEST_LABEL] == services_digest()
    base = docker_client.images.get(f"{BASE_REPOSITORY}:{base_digest()[:12]}")

    code, output = run_in(docker_client, name, ["-c", IMPORT_CHECK])
    assert (code, output.strip()) == (0, "imports ok"), output
    # The entrypoint, PYTHONPATH and WORKDIR run `-m gdk_geo.secondary` up to its config.
    missing = "/x/config/gitlab.yml"
    code, output = run_in(docker_client, name, service_command("gdk_geo.secondary", missing))
    assert code != 0 and f"{missing} does not exist" in output, output

    again: list[Step] = []
    assert ensure_services_image(docker_client, again.append) == name
    assert again == []  # no build reported
    assert docker_client.images.get(name).id == image.id
    assert docker_client.images.get(base.tags[0]).id == base.id


def test_the_digest_follows_every_project_file(tmp_path, monkeypatch) -> None:
    """On a copy of the checkout: an edited module or template names another image; an
    edit to what the services import from the venv names another base too."""
    copy = tmp_path / "checkout"
    for top in ("gdk_geo", "templates"):
        shutil.copytree(REPO_ROOT / top, copy / top, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(services_image, "PROJECT_ROOT", copy)
    original, base = services_digest(), base_digest()
    assert original == services_digest(REPO_ROOT)

    module = copy / "gdk_geo" / "cli" / "tasks.py"  # not even a service's module
    text = module.read_text()
    module.write_text(text + "\n# edited\n")
    assert services_digest() != original
    assert base_digest() == base
    module.write_text(text)
    assert services_digest() == original

    template = copy / "templates" / "admin" / "geo.html.j2"
    template.write_text(template.read_text() + "\n")
    assert services_digest() != original

    worker = copy / "gdk_geo" / "secondary" / "worker.py"
    worker.write_text(worker.read_text() + "\nimport some_new_dependency  # noqa\n")
    assert base_digest() != base


def test_the_service_command_names_a_service() -> None:
    assert service_command("gdk_geo.primary", "/c/gitlab.yml") == [
        *("-m", "gdk_geo.primary", "--config", "/c/gitlab.yml")
    ]
    with pytest.raises(ValueError, match="not a Geo service"):
        service_command("gdk_geo.cli", "/c/gitlab.yml")


@pytest.mark.docker
def test_copy_image_to_a_site(docker_client, site, run_in) -> None:
    name = ensure_services_image(docker_client, lambda step: None)
    with contextlib.suppress(Exception):  # left by an earlier run: this test copies it
        site.images.remove(name)
    steps: list[Step] = []
    started = time.monotonic()
    assert copy_image(name, docker_client, site, steps.append) is True
    print(f"copied {name} to site {SITE} in {time.monotonic() - started:.1f} s")
    assert site.images.get(name).id == docker_client.images.get(name).id
    assert steps and steps[-1].done and steps[-1].done > 10_000_000  # it streamed the layers

    code, output = run_in(site, name, ["-c", IMPORT_CHECK])
    assert (code, output.strip()) == (0, "imports ok"), output
    assert copy_image(name, docker_client, site, steps.append) is False


@pytest.mark.docker
def test_copy_image_to_an_engine_that_does_not_answer(docker_client, tmp_path) -> None:
    docker = pytest.importorskip("docker")
    name = ensure_services_image(docker_client, lambda step: None)
    nowhere = docker.DockerClient(base_url=f"unix://{tmp_path}/docker.sock", version="1.41")
    with pytest.raises(GdkGeoError, match=r"docker\.sock did not answer") as refused:
        copy_image(name, docker_client, nowhere)
    assert "system df" in refused.value.fix


@pytest.mark.docker
def test_copy_image_to_an_ssh_engine_names_its_host(docker_client, tmp_path, monkeypatch) -> None:
    """docker-py's base URL for every ssh:// engine is `http+docker://ssh`: the messages and
    the `docker -H` fix name the ssh host instead (copying over ssh itself is
    tests/e2e/test_ssh_engine.py's)."""
    docker = pytest.importorskip("docker")
    pytest.importorskip("paramiko")
    fake = tmp_path / "ssh"  # an ssh that reaches no host: nothing leaves this machine
    fake.write_text("#!/bin/sh\necho 'ssh: connect to host: Connection refused' >&2\nexit 255\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    name = ensure_services_image(docker_client, lambda step: None)
    host = "ssh://root@198.18.1.2:2222"
    over_ssh = docker.DockerClient(base_url=host, use_ssh_client=True, version="1.41")

    assert services_image._engine(over_ssh) == host
    assert not services_image._engine(docker_client).startswith("ssh://")
    with pytest.raises(GdkGeoError, match=f"{host} did not answer") as refused:
        copy_image(name, docker_client, over_ssh)
    assert f"docker -H {host} system df" in refused.value.fix
