"""Second hosts on this machine: Docker engines in network namespaces of their own.

`prepare-site up N` starts a Docker engine inside namespace `gdkgeo-siteN`, reached from here
only at 198.18.N.2; this machine is 198.18.0.1 to it (docs/sites.md, "Trying it on one
machine"). The script is CI's, found beside the checkout (`<checkout>/../shared/ci/`), as CI
lays it out; `$GDK_GEO_PREPARE_SITE` names it where it is elsewhere. `up` is idempotent.
Only root can make namespaces: `unavailable` says why no site can be made here, and the
tests skip (tests/support/sites.py), the benchmark reports its row as skipped
(bench/apart.py).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
PREPARE_SITE = Path(
    os.environ.get("GDK_GEO_PREPARE_SITE") or CHECKOUT.parent / "shared" / "ci" / "prepare-site"
)
HOME_ADDRESS = "198.18.0.1"  # this machine, as every site reaches it


class SiteError(RuntimeError):
    """`prepare-site` failed; the message has what it printed."""


@dataclass(frozen=True)
class Site:
    number: int
    docker_host: str  # unix:///run/gdkgeo-siteN/docker.sock
    address: str  # 198.18.N.2
    tcp_host: str = ""  # tcp://198.18.N.2:2375 when the site listens on TCP

    def down(self) -> None:
        site_down(self.number)

    def up(self) -> Site:
        return site_up(self.number, tcp=bool(self.tcp_host))


# One `prepare-site` at a time on this machine: every site shares this machine's 198.18.0.1
# and the blackhole route, which the script checks and then adds or removes. Two test
# processes running it at once (site 11's `up` beside site 8's `down`) could both see the
# address missing and both add it ("Address already assigned"), or one remove it while the
# other relies on it.
LOCK = Path("/run/lock/gdkgeo-prepare-site.lock")


def prepare(command: str, number: int, **env: str) -> subprocess.CompletedProcess[str]:
    """`prepare-site <command> <number>`, its output captured, under the machine-wide lock."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with LOCK.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        return subprocess.run(
            ["bash", str(PREPARE_SITE), command, str(number)],
            env=dict(os.environ, **env),
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )


def unavailable() -> str | None:
    """Why no site can be made here, or None."""
    if not PREPARE_SITE.exists():
        return f"{PREPARE_SITE} is not here (GDK_GEO_PREPARE_SITE names another)"
    if os.geteuid() != 0:
        return "prepare-site makes network namespaces: it must run as root (CI does)"
    if shutil.which("nsenter") is None or shutil.which("dockerd") is None:
        return "nsenter and dockerd are needed to start a site's engine"
    return None


def parse_up(number: int, stdout: str) -> Site:
    """The site `prepare-site up` describes in the `NAME=value` lines it prints last."""
    printed = dict(
        line.split("=", 1) for line in stdout.splitlines() if "=" in line and " " not in line
    )
    return Site(
        number,
        printed["DOCKER_HOST"],
        printed["SITE_ADDRESS"],
        printed.get("DOCKER_TCP_HOST", ""),
    )


# `up` checks for 198.18.0.1 with `ip addr show dev lo | grep -q …` under `pipefail`: when
# grep has its line and exits before `ip` is done writing, `ip` dies of SIGPIPE, the check
# reads as "missing", and adding the address that is there fails ("Address already
# assigned"). `up` is idempotent, so it is run again; the next check reads true.
UP_ATTEMPTS = 3


def site_up(number: int, *, tcp: bool = False) -> Site:
    """Site `number` up (idempotent); `SiteError` with the script's output when it fails.
    Callers ask `unavailable` first."""
    for _ in range(UP_ATTEMPTS):
        done = prepare("up", number, SITE_TCP="1" if tcp else "0")
        if done.returncode == 0:
            return parse_up(number, done.stdout)
        if "Address already assigned" not in done.stderr:
            break
    raise SiteError(f"prepare-site up {number} failed:\n{done.stdout}{done.stderr}")


def site_down(number: int) -> None:
    """Site `number` down: its engine and containers stopped, its namespace removed."""
    prepare("down", number)


def is_up(number: int) -> bool:
    """Whether site `number`'s engine answers now."""
    return prepare("status", number).returncode == 0
