"""Static guarantees: TLS verification is never turned off anywhere in what we ship.

A `verify=False` added "just to get it working" is the classic way a replication link ends
up trusting anyone; a grep over the shipped code is cheap and catches it on the day it is
written. The real handshakes (and their refusals) are tested in test_certs.py and
test_nodes.py; this only makes sure nobody opted out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from helpers import REPO_ROOT

SHIPPED = [
    *sorted((REPO_ROOT / "gdk_geo").rglob("*.py")),
    REPO_ROOT / "tasks.py",
    *sorted((REPO_ROOT / "templates").rglob("*.j2")),
]

VERIFICATION_OFF = re.compile(
    r"verify\s*=\s*False"
    r"|CERT_NONE"
    r"|check_hostname\s*=\s*False"
    r"|_create_unverified_context"
    r"|tls[-_]verify\W+false"
    r"|insecure[-_]?skip[-_]?verify"
    r"|^\s*insecure\s*:",
    re.IGNORECASE | re.MULTILINE,
)


def offences(text: str) -> list[str]:
    return [match.group(0) for match in VERIFICATION_OFF.finditer(text)]


@pytest.mark.parametrize(
    "line",
    [
        "httpx.get(url, verify=False)",
        "ctx.verify_mode = ssl.CERT_NONE",
        "ctx.check_hostname = False",
        "ssl._create_unverified_context()",
        "skopeo copy --dest-tls-verify=false",
        "insecure_skip_verify: true",
        "  insecure: true",
    ],
)
def test_the_check_recognises_each_way_of_turning_verification_off(line: str) -> None:
    assert offences(line), line


def test_the_shipped_code_never_turns_verification_off() -> None:
    assert len(SHIPPED) > 10, "the file list found the package"
    found = {
        str(path.relative_to(REPO_ROOT)): hits
        for path in SHIPPED
        if (hits := offences(Path(path).read_text()))
    }
    assert found == {}
