"""`invoke geo.check` against a real project: all ✓ when healthy, then each failure on purpose.

One scratch project (its own container prefix and free ports) is set up for the module.
Every breaking test puts things back the way it found them, so each one sees a healthy
project apart from the fault it makes; the last two stop a service and restart it.

Each breaking test asserts the whole picture: exactly the expected ✗ (no cascade), the
checks that depend on it skipped, the ✗ line and the fix exactly as declared in
`gdk_geo/doctor/checks.py` (which docs/troubleshooting.md's table is generated from).
The checks' machinery without a project is tests/unit/doctor/test_checks.py.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from check_helpers import (
    assert_fails,
    check_named,
    fixed,
    foreign_certificate,
    healthy,
    marks,
    run_check,
    run_fix,
    worker_can_open,
)
from faults_kit import Scratch
from helpers import invoke, ports_yml, running_project, write_gdk_yml

from gdk_geo.doctor import checks
from gdk_geo.project import Project
from gdk_geo.runtime import services
from testkit.net import free_port, wait_for


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("checks")
    with running_project(root, "c") as project:
        yield project


@pytest.mark.docker
def test_a_healthy_project_passes_every_check(project: Project) -> None:
    result = healthy(project)
    assert result.returncode == 0, result.stdout
    assert set(marks(result.stdout).values()) == {"✓"}
    assert "replicated to the secondary" in result.stdout  # the probe went all the way
    assert f"geo.check: {len(checks.CHECKS)} ✓, 0 ✗, 0 skipped" in result.stdout


@pytest.mark.docker
def test_unreachable_engine(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent.sock")
    result = run_check(project)
    skipped = {"image", "ports", "current", "containers", "tls", "secret", "delivery"}
    skipped |= {"registry-token", "realm"}
    assert_fails(result, {"engine"}, skipped=skipped)
    assert "no Docker engine answers" in result.stdout
    assert "skipped: needs “Docker engine answers”" in result.stdout


@pytest.mark.docker
def test_a_foreign_socket_on_a_port(project: Project) -> None:
    original = project.gdk_yml.read_text()
    cfg = project.load()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        try:
            project.gdk_yml.write_text(
                original.replace(f"port: {cfg.geo.primary.port}\n", f"port: {taken}\n", 1)
            )
            result = run_check(project)
        finally:
            project.gdk_yml.write_text(original)
    assert_fails(result, {"ports"}, skipped={"current", "secret", "delivery"})
    assert f"geo.primary.port: port {taken} on 127.0.0.1 is already in use" in result.stdout


@pytest.mark.docker
def test_a_hand_set_secret_in_the_rendered_registry_config(project: Project) -> None:
    config = project.node(project.load(), "primary").registry_config
    original = config.read_bytes()
    secret = (project.secrets_dir(project.load()) / "notification_secret").read_text().strip()
    assert secret.encode() in original
    try:
        config.write_bytes(original.replace(secret.encode(), b"a-secret-set-by-hand"))
        result = run_check(project)
    finally:
        config.write_bytes(original)
    assert_fails(result, {"current"}, skipped={"secret", "delivery"})
    assert secret not in result.stdout + result.stderr  # never printed
    assert "a-secret-set-by-hand" not in result.stdout


@pytest.mark.docker
def test_a_tampered_secondary_certificate(project: Project) -> None:
    certificate = project.node(project.load(), "secondary").certificate
    original = certificate.read_bytes()
    try:
        certificate.write_bytes(foreign_certificate())
        result = run_check(project)
    finally:
        certificate.write_bytes(original)
    assert_fails(result, {"same-certificate"}, skipped={"tls", "realm"})
    assert "the secondary's registry_host.crt" in result.stdout


@pytest.mark.docker
def test_a_read_only_tracking_database(project: Project) -> None:
    database = project.node(project.load(), "secondary").tracking_db
    mode = database.stat().st_mode
    try:
        database.chmod(0o444)
        result = run_check(project)
        worker_writes = worker_can_open(database)
    finally:
        database.chmod(mode)
    # As the worker meets it (issue 13 #23): root writes through 0444, another user does not.
    if worker_writes:
        assert f"✓ {check_named('tracking-db').title}" in result.stdout, result.stdout
    else:
        assert_fails(result, {"tracking-db"})
        assert "readonly database" in result.stdout


@pytest.mark.docker
def test_a_stopped_worker(project: Project) -> None:
    assert services.stop(project.node(project.load(), "secondary"))
    result = run_check(project)
    assert_fails(result, {"worker"}, skipped={"lag", "realm"})
    assert "no worker process runs" in result.stdout
    assert invoke(project.root, "geo.restart", "--node", "secondary").returncode == 0
    assert healthy(project).returncode == 0


@pytest.mark.docker
def test_a_stopped_primary_service(project: Project) -> None:
    assert services.stop(project.node(project.load(), "primary"))
    result = run_check(project)
    assert_fails(result, {"delivery"}, skipped={"event-api", "lag", "realm"})
    assert "the primary Geo service does not answer" in result.stdout
    assert invoke(project.root, "geo.restart", "--node", "primary").returncode == 0
    assert healthy(project).returncode == 0


# --- each ✗ is fixed by running its printed fix, verbatim ----------------------------------


@pytest.mark.docker
def test_a_hand_edited_rendered_file(project: Project) -> None:
    config = project.node(project.load(), "secondary").registry_config
    config.write_text(config.read_text() + "# tried something\n")
    result = run_check(project)
    assert_fails(result, {"current"}, skipped={"secret", "delivery"})
    assert f"{config}: edited by hand since gdk-geo wrote it" in result.stdout
    refused = invoke(project.root, "geo.restart")
    assert refused.returncode == 1 and "edited by hand" in refused.stderr, refused.stderr
    run_fix(project, result.stdout, "current")
    fixed(project)


@pytest.mark.docker
def test_gdk_yml_changed_after_the_last_render(project: Project) -> None:
    gitlab_yml = project.node(project.load(), "secondary").gitlab_yml
    original = project.gdk_yml.read_text()
    project.gdk_yml.write_text(original + "registry:\n  notifications:\n    threshold: 7\n")
    try:
        result = run_check(project)
        assert_fails(result, {"current"}, skipped={"secret", "delivery"})
        assert "gdk.yml asks for something else now" in result.stdout
        run_fix(project, result.stdout, "current")
        fixed(project)
    finally:
        project.gdk_yml.write_text(original)
    assert invoke(project.root, "geo.restart").returncode == 0
    assert gitlab_yml.exists()
    fixed(project)


@pytest.mark.docker
def test_a_deleted_primary_key(project: Project) -> None:
    key = project.node(project.load(), "primary").key
    key.unlink()
    result = run_check(project)
    assert_fails(result, {"certificates"}, skipped={"same-certificate", "tls", "delivery", "realm"})
    assert f"{key} is missing" in result.stdout
    run_fix(project, result.stdout, "certificates")
    fixed(project)


API_URL = "geo.secondary.registry_replication.primary_api_url"


@pytest.mark.docker
def test_a_primary_api_url_where_nothing_of_ours_listens(project: Project) -> None:
    port = free_port()
    assert (
        invoke(project.root, "geo.config.set", API_URL, f"https://localhost:{port}").returncode == 0
    )
    assert invoke(project.root, "geo.reconfigure").returncode == 0
    result = run_check(project)
    assert_fails(result, {"primary-api-url"}, skipped={"tls", "lag", "realm"})
    assert f"{API_URL} is 'https://localhost:{port}': nothing of ours listens" in result.stdout
    run_fix(project, result.stdout, "primary-api-url")
    fixed(project)


@pytest.mark.docker
def test_failed_repositories_are_named_with_their_failure(project: Project) -> None:
    scratch = Scratch(project.root)
    scratch.container("secondary").stop(timeout=10)
    scratch.push("failing/app", "v1")

    def failed_row() -> dict | None:
        row = scratch.rows().get("failing/app")
        return row if row and row["state"] == "failed" else None

    row = wait_for("the sync of failing/app to fail", failed_row, log=scratch.log_tail())
    result = run_check(project)
    skipped = {"tls", "delivery", "registry-token", "realm"}
    assert_fails(result, {"containers", "lag"}, skipped=skipped, own_fix={"lag"})
    assert "    failing/app: " in result.stdout and row["last_sync_failure"]
    assert "fix: `invoke geo.setup` (starts the secondary registry if it is down)" in result.stdout
    assert "then `invoke geo.sync --all`" in result.stdout
    run_fix(project, result.stdout, "lag")
    fixed(project)


@pytest.mark.docker
def test_verify_compares_with_the_primary_registry_itself(project: Project) -> None:
    """A secondary rendered to sync from itself (an older release allowed it) must not
    verify clean: verify reads the primary registry, not the secondary's primary_api_url."""
    scratch = Scratch(project.root)
    cfg = project.load()
    secondary = project.node(cfg, "secondary")
    assert services.stop(secondary)
    text = secondary.gitlab_yml.read_text()
    own = f"https://{cfg.hostname}:{cfg.geo.secondary.registry.port}"
    secondary.gitlab_yml.write_text(
        re.sub(r"primary_api_url: .*", f"primary_api_url: {own}", text, count=1)
    )
    scratch.push("verify-self/app", "v1")
    try:
        result = invoke(project.root, "geo.verify")
    finally:
        secondary.gitlab_yml.write_text(text)
        assert invoke(project.root, "geo.restart", "--node", "secondary").returncode == 0
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✗ verify-self/app" in result.stdout
    fixed(project)


@pytest.mark.docker
def test_a_clone_with_the_same_container_prefix(project: Project, tmp_path: Path) -> None:
    """Another clone, its own ports, the same prefix: our containers are not its own."""
    prefix = project.load().docker.container_prefix
    clone = Project(tmp_path / "clone")
    write_gdk_yml(clone.root, ports_yml(*(free_port() for _ in range(4)), prefix))
    try:
        refused = invoke(clone.root, "geo.setup")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"belongs to the project at {project.root}" in refused.stderr
        result = run_check(clone)
        assert checks.failure_line(check_named("containers")) in result.stdout.splitlines()
        assert f"belongs to the project at {project.root}" in result.stdout
        run_fix(clone, result.stdout, "containers")
        fixed(clone)
        assert clone.load().docker.container_prefix != prefix
    finally:
        invoke(clone.root, "geo.destroy", "--yes", "--data")
    fixed(project)  # ours ran on untouched
