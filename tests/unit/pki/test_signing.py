"""The token signing pair and the move of the previous release's TLS pair, on disk."""

from __future__ import annotations

import stat
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from helpers import seed_secrets, write_gdk_yml
from pki_kit import write_inconsistent_key

from gdk_geo.ops import lifecycle
from gdk_geo.pki import certs, signing
from gdk_geo.project import Project


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_pair_is_rsa_private_and_the_same_on_both_nodes(tmp_path: Path) -> None:
    primary, secondary = tmp_path / "primary", tmp_path / "secondary"
    report = signing.ensure_signing_pair(primary, secondary)
    assert report.action == "created" and report.copied
    key = load_pem_private_key((primary / "localhost.key").read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
    for root in (primary, secondary):
        assert _mode(root / "localhost.key") == 0o600
        assert _mode(root / "localhost.crt") == 0o644
    assert signing.differing_files(primary, secondary) == []


def test_an_inconsistent_key_is_re_made_and_copied(tmp_path: Path) -> None:
    """The services load the key without that check (`token_auth.minter_for`): this run
    is where an inconsistent key is caught."""
    primary, secondary = tmp_path / "primary", tmp_path / "secondary"
    signing.ensure_signing_pair(primary, secondary)
    key_path = primary / "localhost.key"
    write_inconsistent_key(key_path)

    report = signing.ensure_signing_pair(primary, secondary)

    assert report.action == "renewed: localhost.key is not a consistent RSA key"
    assert report.copied and signing.differing_files(primary, secondary) == []
    load_pem_private_key(key_path.read_bytes(), password=None)  # checked: it is sound


def test_each_node_holds_its_key_as_a_jwks_under_the_kid_tokens_carry(tmp_path: Path) -> None:
    """Distribution 3.x looks a bare `kid` up in `auth.token.jwks` by each key's own `kid`:
    the set must hold localhost.crt's key under the libtrust ID our tokens carry."""
    import json

    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicNumbers
    from jwt.utils import base64url_decode

    from gdk_geo.registry.tokens import libtrust_key_id

    primary, secondary = tmp_path / "primary", tmp_path / "secondary"
    signing.ensure_signing_pair(primary, secondary)
    for root in (primary, secondary):
        (jwk,) = json.loads((root / "localhost.jwks.json").read_text())["keys"]
        public = signing.load_signing_certificate(root / "localhost.crt").public_key()
        assert jwk["kid"] == libtrust_key_id(public)
        assert (jwk["kty"], jwk["alg"], jwk["use"]) == ("RSA", "RS256", "sig")
        numbers = RSAPublicNumbers(
            int.from_bytes(base64url_decode(jwk["e"]), "big"),
            int.from_bytes(base64url_decode(jwk["n"]), "big"),
        )
        assert numbers == public.public_numbers()
        assert _mode(root / "localhost.jwks.json") == 0o644


def test_a_jwks_left_stale_is_written_again(tmp_path: Path) -> None:
    primary, secondary = tmp_path / "primary", tmp_path / "secondary"
    signing.ensure_signing_pair(primary, secondary)
    (secondary / "localhost.jwks.json").write_text('{"keys": []}\n')
    signing.ensure_signing_pair(primary, secondary)
    assert (secondary / "localhost.jwks.json").read_bytes() == (
        primary / "localhost.jwks.json"
    ).read_bytes()


def test_a_second_run_changes_nothing(tmp_path: Path) -> None:
    primary, secondary = tmp_path / "primary", tmp_path / "secondary"
    signing.ensure_signing_pair(primary, secondary)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.rglob("localhost.*")}
    report = signing.ensure_signing_pair(primary, secondary)
    assert report.action == "reused" and not report.copied
    assert before == {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in before}


def test_a_differing_secondary_copy_is_named_and_copied_again(tmp_path: Path) -> None:
    primary, secondary = tmp_path / "primary", tmp_path / "secondary"
    signing.ensure_signing_pair(primary, secondary)
    signing.ensure_signing_pair(tmp_path / "other", tmp_path / "unused")
    (secondary / "localhost.key").write_bytes((tmp_path / "other" / "localhost.key").read_bytes())
    assert signing.differing_files(primary, secondary) == ["localhost.key"]
    assert signing.ensure_signing_pair(primary, secondary).copied
    assert signing.differing_files(primary, secondary) == []


def test_an_ec_key_in_localhost_key_is_replaced_by_an_rsa_pair(tmp_path: Path) -> None:
    """What an upgraded node holds if its old TLS files could not be moved aside."""
    primary = tmp_path / "primary"
    certs.ensure_certificates(tmp_path, "localhost", primary, tmp_path / "secondary")
    for name in ("crt", "key"):  # an EC leaf and key where the signing pair belongs
        (primary / f"localhost.{name}").write_bytes(
            (primary / f"registry_host.{name}").read_bytes()
        )
    (primary / "localhost.crt").write_bytes(
        (primary / "registry_host.crt").read_bytes().split(b"-----END CERTIFICATE-----")[0]
        + b"-----END CERTIFICATE-----\n"
    )
    report = signing.ensure_signing_pair(primary, tmp_path / "secondary")
    assert report.action == "renewed: localhost.key is not an RSA key"


def test_the_previous_tls_pair_is_moved_not_regenerated(tmp_path: Path) -> None:
    """The previous release kept TLS in localhost.*: the same certificate must keep serving."""
    write_gdk_yml(tmp_path, "")
    seed_secrets(tmp_path)
    project = Project(tmp_path)
    lifecycle.reconfigure(project, check_in_use=False)
    cfg = project.load()
    for node in project.nodes(cfg):  # lay the nodes out as the previous release did
        node.signing_key.unlink()
        node.signing_certificate.unlink()
        node.certificate.rename(node.signing_certificate)
        node.key.rename(node.signing_key)
    old = certs.fingerprint(project.node(cfg, "primary").signing_certificate)
    lifecycle.reconfigure(project, check_in_use=False)
    for node in project.nodes(cfg):
        assert certs.fingerprint(node.certificate) == old
        assert _mode(node.key) == 0o600
        key = load_pem_private_key(node.signing_key.read_bytes(), password=None)
        assert isinstance(key, rsa.RSAPrivateKey)


def test_no_password_in_a_rendered_diff(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "registry:\n  auth:\n    password: first-password-0123456789\n")
    seed_secrets(tmp_path)
    project = Project(tmp_path)
    lifecycle.reconfigure(project, check_in_use=False)
    write_gdk_yml(tmp_path, "registry:\n  auth:\n    password: second-password-0123456789\n")
    changes = lifecycle.reconfigure(project, check_in_use=False).changes
    diffs = "".join(change.diff for change in changes)
    assert "password:" in diffs  # the line changed, and is shown
    assert "first-password-0123456789" not in diffs
    assert "second-password-0123456789" not in diffs
