"""What the `geo.check` tests share: run it, read its ✓/✗ lines, and run a printed fix.

A fix is run as a user would paste it: every `invoke ...` in backticks through `invoke`,
and, where a test asks for it, every other command in backticks through the shell's
word splitting (`shlex`), as the user who runs the tests (the suite runs as root, so a
step printed "as root:" is run as it says).
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import invoke

from gdk_geo.doctor import checks
from gdk_geo.doctor.checks import Check
from gdk_geo.project import Project
from gdk_geo.secondary.tracking import TrackingDatabaseError, TrackingDB

HEALTHY_DEADLINE = 60.0  # a restarted worker reconnects to the event feed with backoff

# A result line; with several secondaries a skipped one names its node before "skipped".
_LINE = re.compile(r"^(?P<mark>[✓✗-]) (?P<title>.+?)(?: \(.*\)|(?: \([\w-]+\))?: skipped: .*)?$")


def check_named(name: str) -> Check:
    return next(check for check in checks.CHECKS if check.name == name)


def marks(stdout: str) -> dict[str, str]:
    """title -> ✓, ✗ or - for every result line geo.check printed."""
    titles = {check.title for check in checks.CHECKS}
    found = {}
    for line in stdout.splitlines():
        match = _LINE.match(line)
        if match and match["title"] in titles:
            found[match["title"]] = match["mark"]
    return found


def run_check(project: Project) -> subprocess.CompletedProcess:
    result = invoke(project.root, "geo.check", timeout=120)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert len(marks(result.stdout)) == len(checks.CHECKS), result.stdout
    return result


def assert_fails(
    result: subprocess.CompletedProcess,
    names: set[str],
    skipped: set[str] = frozenset(),
    own_fix: set[str] = frozenset(),
) -> None:
    """Exactly `names` failed, each with its declared ✗ line and fix (or, for `own_fix`, a fix
    for what it found, which the test checks itself); `skipped` were skipped."""
    output = result.stdout
    assert result.returncode == 1, output
    found = marks(output)
    assert {t for t, m in found.items() if m == "✗"} == {check_named(n).title for n in names}, (
        output
    )
    assert {t for t, m in found.items() if m == "-"} == {check_named(n).title for n in skipped}, (
        output
    )
    lines = output.splitlines()
    for name in names:
        check = check_named(name)
        assert checks.failure_line(check) in lines, output
        assert name in own_fix or f"    fix: {check.fix}" in lines, output


def healthy(project: Project) -> subprocess.CompletedProcess:
    """geo.check until it passes (a restarted worker takes a moment to reconnect)."""
    deadline = time.monotonic() + HEALTHY_DEADLINE
    while True:
        result = run_check(project)
        if result.returncode == 0 or time.monotonic() > deadline:
            return result
        time.sleep(1)


def printed_fix_text(output: str, check: Check, node: str | None = None) -> str:
    """The fix printed under `check`'s ✗ (for secondary `node`, when there are several),
    without its `fix: ` label."""
    lines = output.splitlines()
    at = lines.index(checks.failure_line(check, node))
    fix = next(line for line in lines[at:] if line.startswith("    fix: "))
    return fix.removeprefix("    fix: ")


def fix_commands(fix: str) -> list[list[str]]:
    """Every command in backticks in a fix text, in order, as argv lists."""
    return [shlex.split(command) for command in re.findall(r"`([^`]+)`", fix)]


def printed_fix(output: str, check: Check) -> list[list[str]]:
    """The invoke commands of the fix printed under `check`'s ✗, in order, as argv lists."""
    return [argv for argv in fix_commands(printed_fix_text(output, check)) if argv[0] == "invoke"]


def run_command(project: Project, argv: list[str]) -> None:
    """Run one command of a fix as a user would paste it in the project's directory."""
    if argv[0] == "invoke":
        result = invoke(project.root, *argv[1:])
    else:
        result = subprocess.run(argv, capture_output=True, text=True, cwd=project.root, timeout=60)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}{result.stderr}"


def run_fix(
    project: Project, output: str, name: str, *, shell: bool = False, node: str | None = None
) -> None:
    """Run every command of the printed fix of check `name` (on secondary `node`, when there
    are several), as a user would paste it: the invoke commands, and with `shell` every
    other command in backticks too."""
    fix = printed_fix_text(output, check_named(name), node)
    commands = [argv for argv in fix_commands(fix) if shell or argv[0] == "invoke"]
    assert commands, output
    for argv in commands:
        run_command(project, argv)


def fixed(project: Project) -> None:
    result = healthy(project)
    assert result.returncode == 0, result.stdout


def worker_can_open(path: Path) -> bool:
    """Whether the worker, run by this same user, would open the database and write."""
    try:
        TrackingDB(path).close()
    except TrackingDatabaseError:
        return False
    return True


def foreign_certificate() -> bytes:
    """A valid certificate for localhost that is not ours (as if copied from elsewhere)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)
