"""What `invoke geo.reconfigure` says about the token signing pair (no Docker).

The pair itself, on disk, is tests/unit/pki/test_signing.py.
"""

from __future__ import annotations

from pathlib import Path

from helpers import invoke, ports_yml, seed_secrets, write_gdk_yml
from pki_kit import write_inconsistent_key

from testkit.net import free_ports


def test_reconfigure_says_what_it_did_to_the_signing_pair(tmp_path: Path) -> None:
    seed_secrets(tmp_path)
    write_gdk_yml(tmp_path, ports_yml(*free_ports(4)))

    created = invoke(tmp_path, "geo.reconfigure")
    unchanged = invoke(tmp_path, "geo.reconfigure")
    write_inconsistent_key(tmp_path / ".gdk-geo" / "primary" / "localhost.key")
    renewed = invoke(tmp_path, "geo.reconfigure")

    assert "token signing pair: created, copied to 1 secondary" in created.stdout
    assert "token signing pair" not in unchanged.stdout  # reused and not copied: no line
    assert (
        "token signing pair: renewed: localhost.key is not a consistent RSA key, "
        "copied to 1 secondary"
    ) in renewed.stdout
