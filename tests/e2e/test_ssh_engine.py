"""A node on an engine reached over `ssh://` (docs/sites.md, "What was tested here").

`primary` runs on this machine's engine and listens at 198.18.0.1; `secondary` runs on the
engine of site 31 (a network namespace of its own, `tests/support/sites.py`), which the CLI
reaches only through an sshd at `ssh://root@198.18.31.2:2222`: docker-py's
`use_ssh_client`, which runs the `ssh` on PATH as `ssh -l root -p 2222 -- 198.18.31.2
'docker system dial-stdio'`. The sshd runs in a container on the site's engine, built FROM
scratch from Debian's openssh-server (`tests/support/ssh_site.py`); the CLI's `ssh` is a
wrapper with the test's key. Everything the CLI does to the secondary goes through ssh:
the images, the files, the containers, the checks. What is on the site is looked at
through the site's own Unix socket, beside ssh.

The tests run in order on one project: set-up, check, a push that replicates, destroy.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator

import docker
import pytest
from failover_kit import digest_on, push_tag
from helpers import invoke, unique_prefix, write_gdk_yml
from sites import Site, apart_yml, site_up
from ssh_site import TEST_LABEL, SshEngine, sshd_on_site

from gdk_geo.project import Project
from testkit.net import wait_for

pytestmark = pytest.mark.docker

SSH_SITE = 31  # this test's own site: not the others' (7, 8, 11, 12, 21)
SETUP_TIMEOUT = 600  # the set-up copies the registry and services images through ssh


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    up = site_up(SSH_SITE)
    try:
        yield up
    finally:
        up.down()


def _remove_images(client: docker.DockerClient) -> None:
    """Every image on the site's engine (the test's own site) removed: the set-up then copies
    the registry and services images through ssh, and the site keeps none after the test."""
    for image in client.images.list():
        with contextlib.suppress(docker.errors.DockerException):
            client.images.remove(image.id, force=True)


@pytest.fixture(scope="module")
def site_engine(site: Site) -> Iterator[docker.DockerClient]:
    """The site's engine through its Unix socket: how the test looks, beside ssh."""
    client = docker.DockerClient(base_url=site.docker_host)
    _remove_images(client)
    try:
        yield client
    finally:
        _remove_images(client)
        client.close()


@pytest.fixture(scope="module")
def ssh_engine(
    site: Site, site_engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SshEngine]:
    socket = site.docker_host.removeprefix("unix://")
    where = tmp_path_factory.mktemp("sshd")
    with sshd_on_site(site_engine, socket, site.address, where, number=SSH_SITE) as engine:
        yield engine


def _ours(client: docker.DockerClient, project: Project) -> tuple[list, list]:
    """This project's containers and volumes on an engine, by its label."""
    label = f"org.gdk-geo.project={project.root}"
    found = client.containers.list(all=True, filters={"label": label})
    return found, client.volumes.list(filters={"label": label})


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory,
    site: Site,
    site_engine: docker.DockerClient,
    ssh_engine: SshEngine,
) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("ssh-project")
    remote = ("secondary", site.address, ssh_engine.docker_host)
    write_gdk_yml(root, apart_yml(unique_prefix("h"), remote))
    project = Project(root)
    try:
        setup = invoke(root, "geo.setup", env=ssh_engine.env, timeout=SETUP_TIMEOUT)
        assert setup.returncode == 0, setup.stdout + setup.stderr
        copied = [
            line
            for line in setup.stdout.splitlines()
            if line.startswith("copying ") and line.endswith(f" to {ssh_engine.docker_host}")
        ]
        assert len(copied) == 2, setup.stdout  # the registry's and the services' images
        yield project
    finally:
        invoke(root, "geo.destroy", "--yes", "--data", env=ssh_engine.env)
        for client in (site_engine, docker.from_env()):  # what a failed destroy left
            containers, volumes = _ours(client, project)
            for leftover in [*containers, *volumes]:
                with contextlib.suppress(docker.errors.DockerException):
                    leftover.remove(force=True)


def test_setup_over_ssh_runs_the_secondary_on_the_site_with_nothing_bind_mounted(
    project: Project, site_engine: docker.DockerClient, ssh_engine: SshEngine
) -> None:
    status = invoke(project.root, "geo.status", "--json", env=ssh_engine.env)
    assert status.returncode == 0, status.stdout + status.stderr
    nodes = json.loads(status.stdout)["nodes"]
    assert nodes["primary"]["engine"]["host"] == "local engine"
    assert nodes["secondary"]["engine"]["host"] == ssh_engine.docker_host

    found, volumes = _ours(site_engine, project)
    assert len(found) == 3, [c.name for c in found]  # registry, Geo service, carrier
    assert len(volumes) == 2, [v.name for v in volumes]  # node root, registry storage
    for container in found:
        assert TEST_LABEL not in container.labels, container.name
        kinds = {mount["Type"] for mount in container.attrs["Mounts"]}
        assert kinds <= {"volume"}, (container.name, container.attrs["Mounts"])


def test_geo_check_passes_and_names_the_ssh_engine(project: Project, ssh_engine: SshEngine) -> None:
    checked = invoke(project.root, "geo.check", env=ssh_engine.env)

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(r"geo.check: \d+ ✓, 0 ✗, 0 skipped", checked.stdout), checked.stdout
    assert f"at {ssh_engine.docker_host}" in checked.stdout, checked.stdout


def test_a_push_to_the_primary_reaches_the_secondary_on_the_ssh_engine(
    project: Project,
) -> None:
    cfg = project.load()

    digest = push_tag(project, cfg, "over-ssh")

    wait_for(
        "the tag on the site", lambda: digest_on(project, cfg, "secondary", "over-ssh") == digest
    )


def test_destroy_with_data_over_ssh_leaves_nothing_of_the_project_on_the_site(
    project: Project, site_engine: docker.DockerClient, ssh_engine: SshEngine
) -> None:
    destroyed = invoke(project.root, "geo.destroy", "--yes", "--data", env=ssh_engine.env)
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr

    assert _ours(site_engine, project) == ([], [])
    assert _ours(docker.from_env(), project) == ([], [])
