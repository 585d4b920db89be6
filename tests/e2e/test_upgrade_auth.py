"""Upgrading to token auth: an environment the previous release set up comes up as it was.

The previous release (commit PREVIOUS_RELEASE, the last before registry token auth) served
TLS from `localhost.crt`/`localhost.key` and took anonymous pushes. Its code is unpacked
from this repository's history, it sets up a project and an image is pushed; then this
release's `geo.setup` runs on the same project, with the old services still running. The
image must still be on both nodes, the TLS certificate must be the same one (moved to
`registry_host.*`), and the signing pair must be new, RSA and on both nodes.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from helpers import invoke, ports_yml, unique_prefix, write_gdk_yml
from registry_login import creds_argument
from upgrade_kit import old_invoke, old_python, previous_release

from gdk_geo.pki import certs
from gdk_geo.project import Project
from testkit.images import make_image, write_oci_layout

pytestmark = pytest.mark.docker

PREVIOUS_RELEASE = "be991a0"  # the last release before the package move and token auth


def _skopeo(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)


@pytest.fixture
def upgraded(docker_client, tmp_path: Path) -> Iterator[tuple[Project, dict[str, str]]]:
    old = previous_release(PREVIOUS_RELEASE, tmp_path / "previous")
    python = old_python(old)
    root = tmp_path / "project"
    ports = [_port() for _ in range(4)]
    write_gdk_yml(root, ports_yml(*ports, unique_prefix("u")))
    project = Project(root)
    try:
        before = old_invoke(python, old, root, "geo.setup")
        assert before.returncode == 0, before.stdout + before.stderr
        primary = project.node(project.load(), "primary")
        assert not primary.certificate.exists()  # the old layout: TLS in localhost.*
        seen = {"tls": certs.fingerprint(primary.root / "localhost.crt")}
        trust = str(project.trust_dir(project.load()))
        layout = write_oci_layout(tmp_path / "layout", "v1", make_image())
        reference = f"docker://localhost:{ports[1]}/upgrade/app:v1"
        pushed = _skopeo("copy", "--dest-cert-dir", trust, f"oci:{layout}:v1", reference)
        assert pushed.returncode == 0, pushed.stderr  # anonymous, as the old release allowed
        synced = old_invoke(python, old, root, "geo.sync", "--all")
        assert synced.returncode == 0, synced.stdout + synced.stderr
        seen["ports"] = f"{ports[1]} {ports[3]}"
        yield project, seen
    finally:
        invoke(root, "geo.destroy", "--yes", "--data")


def _port() -> int:
    from testkit.net import free_port

    return free_port()


def test_setup_after_the_upgrade_keeps_images_and_tls_and_adds_the_signing_pair(
    upgraded: tuple[Project, dict[str, str]],
) -> None:
    project, seen = upgraded
    setup = invoke(project.root, "geo.setup")
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "invoke geo.login" in setup.stdout
    cfg = project.load()
    for node in project.nodes(cfg):
        assert certs.fingerprint(node.certificate) == seen["tls"], node.name  # moved, not new
        key = load_pem_private_key(node.signing_key.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)
        assert (node.signing_key.stat().st_mode & 0o777) == 0o600
        certificate = x509.load_pem_x509_certificate(node.signing_certificate.read_bytes())
        assert certificate.public_key().public_numbers() == key.public_key().public_numbers()
    primary, secondary = project.nodes(cfg)
    assert primary.signing_key.read_bytes() == secondary.signing_key.read_bytes()

    trust = str(project.trust_dir(cfg))
    primary_port, secondary_port = seen["ports"].split()
    for port in (primary_port, secondary_port):
        reference = f"docker://localhost:{port}/upgrade/app:v1"
        inspected = _skopeo(
            "inspect", "--cert-dir", trust, "--creds", creds_argument(project), reference
        )
        assert inspected.returncode == 0, (port, inspected.stderr)
        anonymous = _skopeo("inspect", "--cert-dir", trust, reference)
        assert anonymous.returncode != 0  # auth is on now
    check = invoke(project.root, "geo.check", timeout=180)
    assert check.returncode == 0, check.stdout
