"""The clients' files under `<data_dir>/trust/` (issue #28.1): Docker's certs.d, containerd's
hosts.d and the CA for `--cert-dir`, one set per node's registry, kept current by
reconfigure when ports or nodes change, and never a file gdk-geo did not write."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from helpers import named_nodes_yml, seed_secrets, unique_prefix, write_gdk_yml

from gdk_geo.ops import lifecycle
from gdk_geo.pki import trust
from gdk_geo.project import Project

CA = b"-----BEGIN CERTIFICATE-----\nnot really a CA\n-----END CERTIFICATE-----\n"
PRIMARY, SECONDARY = "localhost:5000", "localhost:5001"


def files_under(directory: Path) -> set[str]:
    return {str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file()}


def test_each_registry_gets_dockers_and_containerds_layout(tmp_path: Path) -> None:
    report = trust.write_client_trust(tmp_path, CA, [PRIMARY, SECONDARY])
    assert files_under(tmp_path) == {
        "ca.crt",
        trust.RECORD,
        f"certs.d/{PRIMARY}/ca.crt",
        f"certs.d/{SECONDARY}/ca.crt",
        f"hosts.d/{PRIMARY}/hosts.toml",
        f"hosts.d/{SECONDARY}/hosts.toml",
    }
    assert (tmp_path / "ca.crt").read_bytes() == CA
    assert (tmp_path / f"certs.d/{SECONDARY}/ca.crt").read_bytes() == CA
    assert len(report.written) == 5 and not report.removed and not report.kept


def test_hosts_toml_names_https_the_ca_by_absolute_path_and_the_capabilities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    trust.write_client_trust(Path("trust"), CA, [SECONDARY])
    parsed = tomllib.loads((tmp_path / f"trust/hosts.d/{SECONDARY}/hosts.toml").read_text())
    assert parsed["server"] == f"https://{SECONDARY}"
    host = parsed["host"][f"https://{SECONDARY}"]
    assert host["ca"] == str(tmp_path / "trust" / "ca.crt")
    assert Path(host["ca"]).is_absolute()
    assert host["capabilities"] == ["pull", "resolve", "push"]


def test_an_unchanged_write_touches_nothing(tmp_path: Path) -> None:
    trust.write_client_trust(tmp_path, CA, [PRIMARY, SECONDARY])
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}
    again = trust.write_client_trust(tmp_path, CA, [PRIMARY, SECONDARY])
    assert not again.changed and not again.kept
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == before


def test_a_new_ca_is_written_everywhere(tmp_path: Path) -> None:
    trust.write_client_trust(tmp_path, CA, [PRIMARY])
    renewed = CA.replace(b"not really", b"another")
    report = trust.write_client_trust(tmp_path, renewed, [PRIMARY])
    assert sorted(report.written) == ["ca.crt", f"certs.d/{PRIMARY}/ca.crt"]
    assert (tmp_path / f"certs.d/{PRIMARY}/ca.crt").read_bytes() == renewed


def test_a_registry_gone_loses_its_files_and_empty_directories(tmp_path: Path) -> None:
    trust.write_client_trust(tmp_path, CA, [PRIMARY, SECONDARY])
    report = trust.write_client_trust(tmp_path, CA, [PRIMARY])
    assert sorted(report.removed) == [
        f"certs.d/{SECONDARY}/ca.crt",
        f"hosts.d/{SECONDARY}/hosts.toml",
    ]
    assert not (tmp_path / "certs.d" / SECONDARY).exists()
    assert not (tmp_path / "hosts.d" / SECONDARY).exists()
    recorded = json.loads((tmp_path / trust.RECORD).read_text())["files"]
    assert set(recorded) == {f"certs.d/{PRIMARY}/ca.crt", f"hosts.d/{PRIMARY}/hosts.toml"}


def test_files_gdk_geo_did_not_write_are_never_touched(tmp_path: Path) -> None:
    """A user's own file beside ours stays; so does a directory holding one, after ours go;
    and a file of ours the user edited is neither overwritten nor removed."""
    trust.write_client_trust(tmp_path, CA, [PRIMARY, SECONDARY])
    own = tmp_path / "certs.d" / SECONDARY / "client.cert"
    own.write_text("mine")
    edited = tmp_path / "hosts.d" / SECONDARY / "hosts.toml"
    edited.write_text(edited.read_text() + "  skip_verify = false\n")
    foreign = tmp_path / "hosts.d" / "registry.example:443" / "hosts.toml"
    foreign.parent.mkdir(parents=True)
    foreign.write_text('server = "https://registry.example"\n')

    report = trust.write_client_trust(tmp_path, CA, [PRIMARY])
    assert report.removed == [f"certs.d/{SECONDARY}/ca.crt"]
    assert report.kept == [f"hosts.d/{SECONDARY}/hosts.toml"]
    assert own.read_text() == "mine" and "skip_verify" in edited.read_text()
    assert foreign.exists()

    # A file at one of our paths that we never wrote is not overwritten either.
    theirs = tmp_path / "hosts.d" / "localhost:5002" / "hosts.toml"
    theirs.parent.mkdir(parents=True)
    theirs.write_text("theirs")
    report = trust.write_client_trust(tmp_path, CA, [PRIMARY, "localhost:5002"])
    assert "hosts.d/localhost:5002/hosts.toml" in report.kept
    assert theirs.read_text() == "theirs"
    assert (tmp_path / "certs.d/localhost:5002/ca.crt").read_bytes() == CA


def test_a_damaged_record_removes_nothing(tmp_path: Path) -> None:
    trust.write_client_trust(tmp_path, CA, [PRIMARY, SECONDARY])
    (tmp_path / trust.RECORD).write_text("{not json")
    report = trust.write_client_trust(tmp_path, CA, [PRIMARY])
    assert not report.removed
    assert (tmp_path / "hosts.d" / SECONDARY / "hosts.toml").exists()


def _reconfigured(root: Path, names: tuple[str, ...], prefix: str) -> Project:
    write_gdk_yml(root, named_nodes_yml(names, prefix))
    project = Project(root)
    lifecycle.reconfigure(project, check_in_use=False)
    return project


def test_reconfigure_follows_the_nodes_and_their_ports(tmp_path: Path) -> None:
    """gdk.yml with three nodes, then two on other ports: the trust directory names exactly
    the registries gdk.yml names, each time."""
    seed_secrets(tmp_path)
    prefix = unique_prefix("t")
    project = _reconfigured(tmp_path, ("dc1", "dc2", "dc3"), prefix)
    cfg = project.load()
    trust_dir = project.trust_dir(cfg)
    first = {cfg.node(n).registry_address for n in cfg.node_names}
    assert {p.name for p in (trust_dir / "hosts.d").iterdir()} == first
    assert {p.name for p in (trust_dir / "certs.d").iterdir()} == first
    ca = (project.ca_dir(cfg) / "ca.crt").read_bytes()
    assert (trust_dir / "ca.crt").read_bytes() == ca

    project = _reconfigured(tmp_path, ("dc1", "dc2"), prefix)  # new free ports, dc3 gone
    cfg = project.load()
    now = {cfg.node(n).registry_address for n in cfg.node_names}
    assert now.isdisjoint(first)
    assert {p.name for p in (trust_dir / "hosts.d").iterdir()} == now
    assert {p.name for p in (trust_dir / "certs.d").iterdir()} == now
