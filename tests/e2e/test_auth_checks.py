"""`geo.check`'s token auth checks against a real project: each fault on purpose, then the
fix exactly as `gdk_geo/checks.py` declares it, run verbatim, until every check is ✓.

One scratch project for the module; each test leaves it healthy again (by the fix).
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator

import pytest
from helpers import invoke, running_project
from registry_login import push_image

from gdk_geo.doctor import checks
from gdk_geo.pki import signing
from gdk_geo.project import Project
from gdk_geo.runtime import containers, services

pytestmark = pytest.mark.docker

DEADLINE = 60.0


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    with running_project(tmp_path_factory.mktemp("authchecks"), "h") as project:
        yield project


def _check(name: str) -> checks.Check:
    return next(check for check in checks.CHECKS if check.name == name)


def _geo_check(project: Project):
    result = invoke(project.root, "geo.check", timeout=180)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    return result


def _failed(result) -> set[str]:
    titles = {check.title: check.name for check in checks.CHECKS}
    found = set()
    for line in result.stdout.splitlines():
        match = re.match(r"^✗ (.+?)(?: \(.*\))?$", line)
        if match and match[1] in titles:
            found.add(titles[match[1]])
    return found


def _run_fix(project: Project, name: str) -> None:
    """The declared fix, verbatim: the command between the first pair of backticks."""
    command = re.match(r"`invoke ([^`]+)`", _check(name).fix)
    assert command, _check(name).fix
    done = invoke(project.root, *command[1].split(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _healthy(project: Project) -> None:
    deadline = time.monotonic() + DEADLINE
    while True:
        result = _geo_check(project)
        if result.returncode == 0:
            return
        assert time.monotonic() < deadline, result.stdout
        time.sleep(1)


def _other_signing_pair(project: Project, node: str, tmp_path) -> None:
    """Give `node` a signing pair of its own, as if the seed's copy step was skipped."""
    stranger = tmp_path / "stranger"
    signing.ensure_signing_pair(stranger, tmp_path / "unused")
    paths = project.node(project.load(), node)
    for name in (signing.CERT_NAME, signing.KEY_NAME):
        (paths.root / name).write_bytes((stranger / name).read_bytes())


def test_the_healthy_project_passes_the_auth_checks(project: Project) -> None:
    _healthy(project)
    output = _geo_check(project).stdout
    for name in ("signing-pair", "registry-token", "realm"):
        assert f"✓ {_check(name).title}" in output


def test_a_secondary_with_its_own_signing_pair(project: Project, tmp_path) -> None:
    """The worker's tokens are refused by the primary: the failure recorded for the
    repository says so in words and points to geo.check, which names the differing file."""
    _other_signing_pair(project, "secondary", tmp_path)
    secondary = project.node(project.load(), "secondary")
    services.stop(secondary)
    services.start(secondary)  # the worker now signs with the stranger key
    push_image(project, "checks/refused", b"refused by the primary")
    sync = invoke(project.root, "geo.sync", "--repo", "checks/refused")
    assert sync.returncode == 1
    with sqlite3.connect(secondary.tracking_db) as db:
        (failure,) = db.execute(
            "SELECT last_sync_failure FROM repositories WHERE repository = ?",
            ("checks/refused",),
        ).fetchone()
    assert "refused the Geo worker's token" in failure and "`invoke geo.check`" in failure

    result = _geo_check(project)
    assert "signing-pair" in _failed(result), result.stdout
    assert (
        "the secondary's localhost.crt is not the primary's; "
        "the secondary's localhost.key is not the primary's"
    ) in result.stdout
    assert f"    fix: {_check('signing-pair').fix}" in result.stdout
    _run_fix(project, "signing-pair")
    _healthy(project)


def test_a_registry_that_trusts_an_older_signing_certificate(project: Project, tmp_path) -> None:
    """Both nodes get a new pair, but the registries were not restarted: they still trust
    the old `localhost.crt`, so a token minted now is refused."""
    _other_signing_pair(project, "primary", tmp_path)
    _other_signing_pair(project, "secondary", tmp_path)
    result = _geo_check(project)
    assert "registry-token" in _failed(result), result.stdout
    assert "refused a token signed now with its localhost.key" in result.stdout
    _run_fix(project, "registry-token")
    _healthy(project)


def test_a_registry_whose_realm_does_not_answer(project: Project, docker_client) -> None:
    cfg = project.load()
    config = project.node(cfg, "secondary").registry_config
    text = config.read_text()
    realm = f"http://{cfg.hostname}:{cfg.geo.secondary.port}/jwt/auth"
    assert realm in text
    config.write_text(text.replace(realm, "http://127.0.0.1:9/jwt/auth"))
    docker_client.containers.get(containers.container_name(cfg, "secondary")).restart(timeout=10)
    result = _geo_check(project)
    # The config was edited by hand to break the realm, which `current` reports too.
    assert _failed(result) == {"current", "realm"}, result.stdout
    assert "the secondary registry's realm http://127.0.0.1:9/jwt/auth does not answer" in (
        result.stdout
    )
    _run_fix(project, "realm")
    _healthy(project)
