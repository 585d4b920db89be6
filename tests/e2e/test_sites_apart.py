"""Sites apart: three nodes on three Docker engines at three addresses (issue #26).

`primary` runs on this machine's engine and listens at 198.18.0.1 (the address the sites
reach it at); `secondary` runs on a site's engine reached over its Unix socket, `dc3` on
another site's engine reached over TCP, as a remote engine is. Each site is a network
namespace of its own (`tests/support/sites.py`): its containers see its own loopback, and
this machine reaches it only at 198.18.N.2. Nothing of the project is bind-mounted there.

The tests run in order on one project (each step builds on the one before, as a developer's
session does): set-up, check, a real `docker push` and `docker pull` by digest at each
address, verify, the services' credentials, a planned promotion to a site, a forced one
back with that site's engine stopped, reconcile, an engine that does not answer, destroy.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterator

import docker
import httpx
import pytest
from client_rig import DockerDriver
from failover_kit import REPO, digest_on, push_tag
from helpers import invoke, unique_prefix, write_gdk_yml
from sites import HOME_ADDRESS, TCP_SITE, UNIX_SITE, Site, apart_yml, forget_docker_trust, site_up

from gdk_geo.node.settings import load_secondary
from gdk_geo.project import Project
from gdk_geo.project.secret_store import ensure_secrets
from testkit.net import wait_for

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def sites() -> tuple[Site, Site]:
    return site_up(UNIX_SITE), site_up(TCP_SITE, tcp=True)


@pytest.fixture(scope="module")
def project(
    tmp_path_factory: pytest.TempPathFactory, sites: tuple[Site, Site]
) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("sites")
    unix_site, tcp_site = sites
    secondary = ("secondary", unix_site.address, unix_site.docker_host)
    dc3 = ("dc3", tcp_site.address, tcp_site.tcp_host)
    write_gdk_yml(root, apart_yml(unique_prefix("s"), secondary, dc3))
    project = Project(root)
    cfg = project.load()
    try:
        setup = invoke(root, "geo.setup")
        assert setup.returncode == 0, setup.stdout + setup.stderr
        yield project
    finally:
        invoke(root, "geo.destroy", "--yes", "--data")
        forget_docker_trust([cfg.node(name).registry_address for name in cfg.node_names])


@pytest.fixture(scope="module")
def docker_cli(
    project: Project, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DockerDriver]:
    driver = DockerDriver(project, tmp_path_factory.mktemp("docker-cli"))
    try:
        yield driver
    finally:
        driver.cleanup()


def _engine(site: Site) -> docker.DockerClient:
    return docker.DockerClient(base_url=site.docker_host)


def _ours(client: docker.DockerClient, project: Project) -> tuple[list, list]:
    """This project's containers and volumes on an engine, by its label."""
    label = f"org.gdk-geo.project={project.root}"
    found = client.containers.list(all=True, filters={"label": label})
    return found, client.volumes.list(filters={"label": label})


def test_each_node_runs_on_its_own_engine_with_nothing_bind_mounted(
    project: Project, sites: tuple[Site, Site]
) -> None:
    status = invoke(project.root, "geo.status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    nodes = json.loads(status.stdout)["nodes"]
    assert nodes["primary"]["engine"]["host"] == "local engine"
    assert nodes["secondary"]["engine"]["host"] == sites[0].docker_host
    assert nodes["dc3"]["engine"]["host"] == sites[1].tcp_host
    for site in sites:
        found, volumes = _ours(_engine(site), project)
        assert len(found) == 3, [c.name for c in found]  # registry, Geo service, carrier
        assert len(volumes) == 2, [v.name for v in volumes]  # node root, registry storage
        for container in found:
            kinds = {mount["Type"] for mount in container.attrs["Mounts"]}
            assert kinds <= {"volume"}, (container.name, container.attrs["Mounts"])


def test_geo_check_passes_on_every_engine(project: Project) -> None:
    checked = invoke(project.root, "geo.check")

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert re.search(r"geo.check: \d+ ✓, 0 ✗, 0 skipped", checked.stdout), checked.stdout
    assert "Docker" in checked.stdout and "at unix:///run/gdkgeo-site" in checked.stdout


def test_docker_push_to_the_primary_is_pulled_by_digest_from_each_site(
    project: Project, docker_cli: DockerDriver
) -> None:
    cfg = project.load()
    login = docker_cli.geo_login()
    assert login.returncode == 0, login.stdout + login.stderr

    digest = docker_cli.push_new(f"{cfg.primary.registry_address}/{REPO}:v1")

    for node in ("secondary", "dc3"):
        wait_for(f"{REPO}:v1 on {node}", lambda n=node: digest_on(project, cfg, n, "v1") == digest)
        docker_cli.pull(f"{cfg.node(node).registry_address}/{REPO}@{digest}")


def _settled(project: Project) -> bool:
    """Whether every secondary's worker has read every event and has no sync waiting or in
    flight (`geo.status` asks each with the node token: they listen beyond loopback)."""
    status = json.loads(invoke(project.root, "geo.status", "--json").stdout)
    for info in status["nodes"].values():
        if info["role"] != "secondary":
            continue
        replication = info.get("replication") or {"lag": None, "counts": {}}
        counts = replication["counts"]
        if replication["lag"] != 0 or counts.get("pending") or counts.get("started"):
            return False
    return True


def _verified(project: Project) -> None:
    """`geo.verify` clean, once what is in flight (a check's probe, pushed then deleted) has
    replicated: verify compares the registries as they are at that moment."""
    wait_for("every secondary settled", lambda: _settled(project), timeout=60)
    verified = invoke(project.root, "geo.verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_geo_verify_is_clean_across_engines(project: Project) -> None:
    _verified(project)


def test_a_shaped_link_to_a_site_carries_replication_through_this_machine(
    project: Project,
) -> None:
    shaped = invoke(project.root, "geo.link", "--node", "secondary", "--latency", "40ms")
    assert shaped.returncode == 0, shaped.stdout + shaped.stderr
    try:
        cfg = project.load()
        settings = load_secondary(project.node(cfg, "secondary").gitlab_yml)
        assert settings.primary_api_url.startswith(f"https://{HOME_ADDRESS}:")
        assert settings.primary_api_url != cfg.primary.registry_url  # through the relay
        shown = invoke(project.root, "geo.link").stdout
        row = next(line for line in shown.splitlines() if "secondary" in line)
        assert float(re.search(r"([0-9.]+) ms\s*│?\s*$", row.strip()).group(1)) >= 40.0
        digest = push_tag(project, cfg, "over-the-link")
        wait_for(
            "the tag on the site",
            lambda: digest_on(project, cfg, "secondary", "over-the-link") == digest,
        )
    finally:
        reset = invoke(project.root, "geo.link", "--node", "secondary", "--reset")
    assert reset.returncode == 0, reset.stdout + reset.stderr
    cfg = project.load()
    assert load_secondary(project.node(cfg, "secondary").gitlab_yml).primary_api_url == (
        cfg.primary.registry_url
    )


def test_sync_and_logs_reach_the_nodes_on_other_engines(project: Project) -> None:
    synced = invoke(project.root, "geo.sync", "--all", "--node", "dc3")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    assert "in this process" not in synced.stdout + synced.stderr  # the site's worker ran it

    logs = invoke(project.root, "geo.logs", "--node", "secondary", "--tail", "20")
    assert logs.returncode == 0, logs.stdout + logs.stderr
    assert "secondary registry" in logs.stdout and "secondary geo" in logs.stdout


def test_stop_and_setup_stop_and_start_what_runs_on_every_engine(
    project: Project, sites: tuple[Site, Site]
) -> None:
    stopped = invoke(project.root, "geo.stop")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for site in sites:
        running = _engine(site).containers.list(
            filters={"label": f"org.gdk-geo.project={project.root}"}
        )
        assert running == [], [c.name for c in running]

    started = invoke(project.root, "geo.setup")
    assert started.returncode == 0, started.stdout + started.stderr
    _verified(project)


def test_a_site_service_refuses_every_api_without_its_credential(project: Project) -> None:
    cfg = project.load()
    secondary = cfg.node("secondary")
    worker = secondary.service_url
    own_host = f"{secondary.hostname}:{secondary.port}"
    with httpx.Client(timeout=10) as http:
        assert http.get(f"{worker}/-/metrics").status_code == 401
        assert http.get(f"{worker}/api/v4/geo/replication/status").status_code == 401
        assert http.post(f"{worker}/api/v4/geo/container_repositories/resync").status_code == 401
        assert http.get(f"{worker}/admin/geo").status_code == 401
        assert http.get(f"{cfg.primary.service_url}/api/v4/geo/events").status_code == 401
        user = _user(project)
        admin = f"{worker}/admin/geo"
        assert http.get(admin, auth=user).status_code == 200
        assert http.get(admin, auth=user, headers={"Host": "evil.test"}).status_code == 403
        posted = http.post(f"{admin}/resync", auth=user, headers={"Host": own_host})
        assert posted.status_code == 403, posted.text  # no CSRF token: a cross-site POST


def _user(project: Project) -> tuple[str, str]:
    cfg = project.load()
    secrets = ensure_secrets(
        project.secrets_dir(cfg), cfg.registry.notification_secret, cfg.registry.auth.password
    )
    return cfg.registry.auth.username, secrets.registry_password.value


def test_a_planned_promotion_moves_the_primary_to_a_site(project: Project) -> None:
    promoted = invoke(project.root, "geo.promote", "--node", "secondary")
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr

    cfg = project.load()
    assert cfg.primary_name == "secondary"
    digest = push_tag(project, cfg, "on-site")
    for node in ("primary", "dc3"):
        wait_for(
            f"on-site on {node}", lambda n=node: digest_on(project, cfg, n, "on-site") == digest
        )


def test_a_forced_promotion_with_the_primary_site_stopped_then_reconcile(
    project: Project, sites: tuple[Site, Site]
) -> None:
    unix_site = sites[0]
    unix_site.down()  # the primary's machine is gone: its engine, containers and address
    try:
        forced = invoke(project.root, "geo.promote", "--node", "primary", "--force")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        assert "cannot be complete" in forced.stdout or "could not" in forced.stdout
        assert "Traceback" not in forced.stdout + forced.stderr
    finally:
        unix_site.up()
    back = invoke(project.root, "geo.setup")  # brings the old primary back, fenced
    assert back.returncode == 0, back.stdout + back.stderr
    reconciled = invoke(project.root, "geo.reconcile", "--node", "secondary", "--yes")
    assert reconciled.returncode == 0, reconciled.stdout + reconciled.stderr
    _verified(project)


def test_an_engine_that_does_not_answer_is_a_check_failure_and_one_line_errors(
    project: Project, sites: tuple[Site, Site]
) -> None:
    tcp_site = sites[1]
    tcp_site.down()
    try:
        checked = invoke(project.root, "geo.check")
        assert checked.returncode != 0
        assert "✗ Docker engine answers" in checked.stdout
        assert "geo.nodes.dc3.docker.host" in checked.stdout
        assert "node dc3" in checked.stdout
        for task in (
            ("geo.status",),
            ("geo.logs", "--node", "dc3"),
            ("geo.restart", "--node", "dc3"),
        ):
            done = invoke(project.root, *task)
            assert "Traceback" not in done.stdout + done.stderr, task
        failed = invoke(project.root, "geo.restart", "--node", "dc3")
        assert failed.returncode != 0
        assert "the Docker engine of node dc3" in failed.stdout + failed.stderr
    finally:
        tcp_site.up()
    # The ✗'s fix: the engine started, the command run again. The engine answers now; the
    # site lost its containers with it, and that ✗ prints its own fix, run as printed.
    again = invoke(project.root, "geo.check")
    assert "✓ Docker engine answers" in again.stdout, again.stdout
    _run_printed_fix(project, again.stdout, "registry containers are running")
    assert _check_line(project, "registry containers are running").startswith("✓")


def _check_line(project: Project, title: str) -> str:
    checked = invoke(project.root, "geo.check").stdout
    return next(line for line in checked.splitlines() if title in line)


def _run_printed_fix(project: Project, checked: str, title: str) -> None:
    """Run the fix `geo.check` printed under the ✗ of `title`, verbatim."""
    after = checked.split(f"✗ {title}", 1)
    assert len(after) == 2, checked
    fix = re.search(r"fix:\s+`(invoke [^`]+)`", after[1])
    assert fix, checked
    done = invoke(project.root, *shlex.split(fix.group(1))[1:])
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_site_worker_that_does_not_run_is_a_check_failure_whose_fix_starts_it(
    project: Project, sites: tuple[Site, Site]
) -> None:
    prefix = project.load().docker.container_prefix
    _engine(sites[0]).containers.get(f"{prefix}-secondary-geo").stop()

    checked = invoke(project.root, "geo.check")
    assert checked.returncode != 0
    assert "secondary-geo on unix:///run/gdkgeo-site11" in checked.stdout, checked.stdout
    _run_printed_fix(project, checked.stdout, "the tracking database is writable")
    assert _check_line(project, "the tracking database is writable").startswith("✓")


def test_an_image_missing_on_a_site_is_a_check_failure_whose_fix_loads_it(
    project: Project, sites: tuple[Site, Site]
) -> None:
    site = _engine(sites[1])
    prefix = project.load().docker.container_prefix
    image = site.containers.get(f"{prefix}-dc3-registry").attrs["Config"]["Image"]
    site.images.remove(image, force=True)  # its tag: the running registry keeps its layers

    checked = invoke(project.root, "geo.check")
    assert checked.returncode != 0
    assert f"{image} is not on the engine of dc3" in checked.stdout, checked.stdout
    _run_printed_fix(project, checked.stdout, "registry image is present")
    assert _check_line(project, "registry image is present").startswith("✓")


def test_destroy_with_data_leaves_nothing_of_the_project_on_any_engine(
    project: Project, sites: tuple[Site, Site]
) -> None:
    destroyed = invoke(project.root, "geo.destroy", "--yes", "--data")
    assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr

    for client in (docker.from_env(), *(_engine(site) for site in sites)):
        assert _ours(client, project) == ([], [])
