"""What `invoke geo.reconfigure` says about the token signing pair (no Docker).

The pair itself, on disk, is tests/unit/pki/test_signing.py.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from helpers import invoke, ports_yml, seed_secrets, write_gdk_yml

from testkit.net import free_ports


def _write_inconsistent_key(key_path: Path) -> None:
    """A key that parses and matches its certificate (the same modulus) but carries a
    wrong CRT exponent: only cryptography's consistency check tells."""
    numbers = load_pem_private_key(key_path.read_bytes(), password=None).private_numbers()
    broken = rsa.RSAPrivateNumbers(
        numbers.p,
        numbers.q,
        numbers.d,
        numbers.dmp1 + 2,
        numbers.dmq1,
        numbers.iqmp,
        numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    key_path.write_bytes(
        broken.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_reconfigure_says_what_it_did_to_the_signing_pair(tmp_path: Path) -> None:
    seed_secrets(tmp_path)
    write_gdk_yml(tmp_path, ports_yml(*free_ports(4)))

    created = invoke(tmp_path, "geo.reconfigure")
    unchanged = invoke(tmp_path, "geo.reconfigure")
    _write_inconsistent_key(tmp_path / ".gdk-geo" / "primary" / "localhost.key")
    renewed = invoke(tmp_path, "geo.reconfigure")

    assert "token signing pair: created, copied to 1 secondary" in created.stdout
    assert "token signing pair" not in unchanged.stdout  # reused and not copied: no line
    assert (
        "token signing pair: renewed: localhost.key is not a consistent RSA key, "
        "copied to 1 secondary"
    ) in renewed.stdout
