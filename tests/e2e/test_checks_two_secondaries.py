"""`invoke geo.check` with two secondaries: each fault made on the second one (dc3) alone.

One real project of three nodes (`geo.nodes`: primary, secondary and dc3, token auth on)
is set up for the module. Each test breaks one thing on dc3 and nothing on the first
secondary, then asserts what a user with several secondaries relies on: the ✗ line names
dc3, the same check on the first secondary is still ✓, the fix printed is aimed at dc3,
and running that fix verbatim in the project's directory, as a user would paste it,
brings every check of every node back to ✓.

The two-node form's faults are in test_checks.py and test_tracking_db_check.py. The tls
check has no fault of dc3's own here: the CA it verifies with is dc3's
`registry_host.crt`, which "same-certificate" compares first, and the URL it reads is
dc3's `primary_api_url`, which "primary-api-url" checks first.

Backfill and verification run an hour apart: a worker syncs only what a push tells it, so
no periodic pass lands on a registry a test broke on purpose and records a failure the
test did not make.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from check_helpers import (
    check_named,
    foreign_certificate,
    healthy,
    printed_fix_text,
    run_check,
    run_fix,
)
from faults_kit import Scratch
from helpers import invoke, named_nodes_yml, set_up, unique_prefix

from gdk_geo.doctor import checks
from gdk_geo.project import NodePaths, Project
from gdk_geo.runtime import health, services
from testkit.net import free_port, wait_for

FIRST, SECOND = "secondary", "dc3"  # the two secondaries; the faults are SECOND's

EVENTS_ONLY = (
    "\n      registry_replication:\n        backfill_interval: 1h"
    "\n        verification_interval: 1h"
)


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("two-secondaries")
    text = named_nodes_yml(("primary", FIRST, SECOND), unique_prefix("s"), EVENTS_ONLY)
    with set_up(root, text) as project:
        yield project


def _dc3(project: Project) -> NodePaths:
    return project.node(project.load(), SECOND)


def mark_of(output: str, name: str, node: str) -> str | None:
    """The mark geo.check printed for per-secondary check `name` on `node`, None if none."""
    title = check_named(name).title
    for line in output.splitlines():
        mark, _, rest = line.partition(" ")
        if rest == f"{title} ({node})" or rest.startswith(
            (f"{title} ({node}: ", f"{title} ({node}):")
        ):
            return mark
    return None


def broken_on_dc3(
    project: Project,
    names: set[str],
    whole: set[str] = frozenset(),
    skipped: set[str] = frozenset(),
) -> str:
    """geo.check now: the ✗ lines are exactly `names` on dc3 and `whole` (checks of the
    whole project), each of `names` is ✓ on the first secondary, and `skipped` are skipped
    on dc3 (one cause, one ✗). Returns what geo.check printed."""
    result = run_check(project)
    output = result.stdout
    assert result.returncode == 1, output
    crosses = {line for line in output.splitlines() if line.startswith("✗ ")}
    expected = {checks.failure_line(check_named(name), SECOND) for name in names}
    expected |= {checks.failure_line(check_named(name)) for name in whole}
    assert crosses == expected, output
    for name in names:
        assert mark_of(output, name, FIRST) == "✓", output
    for name in skipped:
        assert mark_of(output, name, SECOND) == "-", output
    return output


def fixed_on_dc3(project: Project, output: str, name: str, *, shell: bool = False) -> str:
    """Run the fix printed under `name`'s ✗ for dc3 (the project's ✗ for a check of the
    whole project), verbatim, and see every check pass. Returns the fix as printed."""
    node = SECOND if check_named(name).each_secondary else None
    fix = printed_fix_text(output, check_named(name), node)
    assert "--node secondary" not in fix and "geo.secondary." not in fix, fix
    if "--node" in fix:
        assert f"--node {SECOND}" in fix, fix
    run_fix(project, output, name, shell=shell, node=node)
    result = healthy(project)
    assert result.returncode == 0, result.stdout
    assert mark_of(result.stdout, name, SECOND) in (None, "✓"), result.stdout
    return fix


def restart_registry(project: Project, node: str) -> None:
    """Restart `node`'s registry container and wait until it answers (it has read its
    config and its `rootcertbundle` by then)."""
    Scratch(project.root).container(node).restart(timeout=10)
    cfg = project.load()
    url, ca_file = cfg.node(node).registry_url, project.node(cfg, node).certificate
    wait_for(f"the {node} registry to answer", lambda: health.probe_registry(url, ca_file).ok)


@pytest.mark.docker
def test_a_healthy_project_passes_every_check_on_both_secondaries(project: Project) -> None:
    result = healthy(project)
    assert result.returncode == 0, result.stdout
    each = [check for check in checks.CHECKS if check.each_secondary]
    for check in each:
        for node in (FIRST, SECOND):
            assert mark_of(result.stdout, check.name, node) == "✓", result.stdout
    passed = len(checks.CHECKS) + len(each)  # the per-secondary ones once for each
    assert f"geo.check: {passed} ✓, 0 ✗, 0 skipped" in result.stdout


@pytest.mark.docker
def test_a_stopped_worker_on_dc3(project: Project) -> None:
    assert services.stop(_dc3(project))
    output = broken_on_dc3(project, {"worker"}, skipped={"realm", "lag"})
    assert "no worker process runs" in output
    fix = fixed_on_dc3(project, output, "worker")
    assert f"`invoke geo.restart --node {SECOND}`" in fix


@pytest.mark.docker
def test_a_damaged_tracking_database_on_dc3(project: Project) -> None:
    database = _dc3(project).tracking_db
    assert services.stop(_dc3(project))
    for leftover in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    database.write_bytes(b"not SQLite: a half-copied backup, say. " * 200)
    output = broken_on_dc3(project, {"worker", "tracking-db"}, skipped={"realm", "lag"})
    assert f"{database} is not a usable SQLite database" in output
    fix = fixed_on_dc3(project, output, "tracking-db", shell=True)
    assert f"`mv {database} {database}.damaged`" in fix


@pytest.mark.docker
def test_a_foreign_certificate_on_dc3(project: Project) -> None:
    _dc3(project).certificate.write_bytes(foreign_certificate())
    output = broken_on_dc3(project, {"same-certificate"}, skipped={"tls", "realm"})
    assert "the secondary's registry_host.crt" in output
    fixed_on_dc3(project, output, "same-certificate")


@pytest.mark.docker
def test_a_deleted_tls_key_on_dc3(project: Project) -> None:
    """The certificates check is one of every node: its ✗ is the project's, its detail dc3's."""
    key = _dc3(project).key
    key.unlink()
    output = broken_on_dc3(project, set(), whole={"certificates"}, skipped={"same-certificate"})
    assert f"{key} is missing" in output
    assert mark_of(output, "same-certificate", FIRST) == "-", output
    fixed_on_dc3(project, output, "certificates")
    assert key.exists()


@pytest.mark.docker
def test_a_deleted_signing_key_on_dc3(project: Project) -> None:
    cfg = project.load()
    key = _dc3(project).root / "localhost.key"
    key.unlink()
    output = broken_on_dc3(project, {"signing-pair"}, skipped={"registry-token"})
    assert f"compared {_dc3(project).root} with {project.node(cfg, 'primary').root}" in output
    assert "the secondary's localhost.key is missing" in output
    fixed_on_dc3(project, output, "signing-pair")
    assert key.read_bytes() == (project.node(cfg, "primary").root / "localhost.key").read_bytes()


@pytest.mark.docker
def test_dc3s_registry_trusts_another_signing_certificate(project: Project) -> None:
    """dc3's registry started with a foreign `localhost.crt`, whose file is ours again now:
    the files agree, the running registry refuses every token."""
    bundle = _dc3(project).root / "localhost.crt"
    ours = bundle.read_bytes()
    bundle.write_bytes(foreign_certificate())  # in place: the container mounts this file
    try:
        restart_registry(project, SECOND)
    finally:
        bundle.write_bytes(ours)
    output = broken_on_dc3(project, {"registry-token"})
    assert "it trusts another localhost.crt" in output
    fixed_on_dc3(project, output, "registry-token")


@pytest.mark.docker
def test_a_realm_on_dc3_where_nothing_answers(project: Project) -> None:
    config = _dc3(project).registry_config
    realm = f"http://localhost:{free_port()}/jwt/auth"
    config.write_text(re.sub(r"realm: \S+", f"realm: {realm}", config.read_text(), count=1))
    restart_registry(project, SECOND)
    output = broken_on_dc3(project, {"realm"}, whole={"current"})
    assert f"realm {realm} does not answer" in output
    fixed_on_dc3(project, output, "realm")
    assert realm not in config.read_text()


@pytest.mark.docker
def test_a_node_token_on_dc3_the_primary_refuses(project: Project) -> None:
    gitlab_yml = _dc3(project).gitlab_yml
    text = gitlab_yml.read_text()
    gitlab_yml.write_text(text.replace('node_token: "', 'node_token: "not-', 1))
    output = broken_on_dc3(project, {"event-api"}, whole={"current"}, skipped={"realm", "lag"})
    assert "refused the secondary's node token (HTTP 401)" in output
    fixed_on_dc3(project, output, "event-api")
    assert gitlab_yml.read_text() == text


@pytest.mark.docker
def test_a_primary_api_url_on_dc3_where_nothing_of_ours_listens(project: Project) -> None:
    key = f"geo.nodes.{SECOND}.registry_replication.primary_api_url"
    url = f"https://localhost:{free_port()}"
    assert invoke(project.root, "geo.config.set", key, url).returncode == 0
    assert invoke(project.root, "geo.reconfigure").returncode == 0
    output = broken_on_dc3(project, {"primary-api-url"}, skipped={"tls", "lag"})
    assert f"{key} is '{url}': nothing of ours listens" in output
    fix = fixed_on_dc3(project, output, "primary-api-url")
    assert f"`invoke geo.config.set {key} ''`" in fix


@pytest.mark.docker
def test_a_repository_failed_on_dc3_while_its_registry_was_down(project: Project) -> None:
    scratch = Scratch(project.root)
    scratch.container(SECOND).stop(timeout=10)
    scratch.push("failing-on-dc3/app", "v1")

    def failed_row() -> dict | None:
        row = scratch.rows(SECOND).get("failing-on-dc3/app")
        return row if row and row["state"] == "failed" else None

    row = wait_for("the sync of failing-on-dc3/app to fail on dc3", failed_row)
    scratch.wait_synced(["failing-on-dc3/app"])  # on the first secondary
    output = broken_on_dc3(project, {"lag"}, whole={"containers"})
    assert "    failing-on-dc3/app: " in output and row["last_sync_failure"]
    fix = fixed_on_dc3(project, output, "lag")
    assert f"(starts the {SECOND} registry if it is down)" in fix
    assert f"`invoke geo.sync --node {SECOND} --all`" in fix
    assert scratch.rows(SECOND)["failing-on-dc3/app"]["state"] == "synced"
