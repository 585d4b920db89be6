"""The tracking-db check: each way the worker's database can be unwritable, broken for real,
diagnosed as the worker meets it, and fixed by running the printed fix (in a running
project, through `geo.check`: tests/e2e/test_tracking_db_check.py).

The suite runs as root, and root writes through mode bits, so each break is one that
stops root too (an immutable attribute, a read-only mount, a damaged file, a file where a
directory belongs), or the check and the worker run as another user (`setpriv`), as they
do for a user who is not root. Every test asserts the worker agrees with the check before
and after: the check is only true if the worker fails exactly where it says ✗.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from check_helpers import worker_can_open as _worker_can_open_here
from helpers import REPO_ROOT
from immutable import run_ok

from gdk_geo.doctor.tracking_db_check import RESTART, DatabaseProblem, diagnose
from gdk_geo.secondary.tracking import TrackingDB

OTHER_USER = "nobody"  # any account but root: it meets mode bits as a user does

_AS_USER = """
import json, sys
from pathlib import Path
from gdk_geo.secondary.tracking import TrackingDatabaseError, TrackingDB
from gdk_geo.doctor.tracking_db_check import diagnose
path = Path(sys.argv[1])
if sys.argv[2] == "make":
    TrackingDB(path).close()
problem = diagnose(path)
try:
    TrackingDB(path).close()
    worker = True
except TrackingDatabaseError:
    worker = False
print(json.dumps({"what": problem and problem.what, "fix": problem and problem.fix,
                  "worker": worker}))
"""


def _steps(fix: str) -> list[tuple[bool, list[str]]]:
    """The commands of a fix text in order, each with whether it says to run it as root."""
    return [
        (bool(root), shlex.split(command))
        for root, command in re.findall(r"(as root: )?`([^`]+)`", fix)
    ]


def _shell_steps(fix: str) -> list[tuple[bool, list[str]]]:
    """The fix's commands but the final restart (no project runs in these tests), which
    every fix ends with."""
    steps = _steps(fix)
    assert fix.endswith(RESTART) or RESTART + " (" in fix, fix
    assert steps[-1][1] == shlex.split(RESTART.strip("`")), fix
    return steps[:-1]


# --- as root, where root is refused too ----------------------------------------------------


def _fix_as_root(fix: str) -> None:
    for _root, argv in _shell_steps(fix):
        run_ok(argv)


def _refused_then_fixed(database: Path, found: str) -> DatabaseProblem:
    """The worker fails on `database`, the check says why (`found`), its fix is run as
    printed, and then both the check and the worker pass. Returns what the check said."""
    assert not _worker_can_open_here(database)
    problem = diagnose(database)
    assert problem is not None and found in problem.what, problem
    _fix_as_root(problem.fix)
    assert diagnose(database) is None and _worker_can_open_here(database)
    return problem


def test_an_immutable_database(tmp_path: Path, chattr: list[Path]) -> None:
    database = tmp_path / "geo" / "tracking.sqlite3"
    TrackingDB(database).close()
    chattr.append(database)
    run_ok(["chattr", "+i", str(database)])
    problem = _refused_then_fixed(database, f"{database}: immutable")
    assert problem.fix.startswith(f"as root: `chattr -ia {database}`"), problem


def test_an_immutable_directory_where_the_database_is_to_be_made(
    tmp_path: Path, chattr: list[Path]
) -> None:
    directory = tmp_path / "geo"
    directory.mkdir()
    chattr.append(directory)
    run_ok(["chattr", "+i", str(directory)])
    database = directory / "tracking.sqlite3"
    _refused_then_fixed(database, f"{directory}: immutable")


def test_a_damaged_database(tmp_path: Path) -> None:
    database = tmp_path / "geo" / "tracking.sqlite3"
    database.parent.mkdir()
    database.write_bytes(b"not SQLite: a half-copied backup, say. " * 200)
    _refused_then_fixed(database, "is not a usable SQLite database")
    assert Path(f"{database}.damaged").read_bytes().startswith(b"not SQLite")  # kept aside


def test_a_file_where_the_database_directory_belongs(tmp_path: Path) -> None:
    blocker = tmp_path / "geo"
    blocker.write_text("a file where the worker wants its directory\n")
    database = blocker / "tracking.sqlite3"
    _refused_then_fixed(database, f"{blocker} is a file")


# --- a read-only mount, in a mount namespace of the test's own -----------------------------


@pytest.fixture
def namespace() -> Iterator[list[str]]:
    """`nsenter` argv into a private mount namespace: mounts made there are nobody else's."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("nsenter")):
        pytest.skip("needs root with unshare and nsenter")
    holder = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sleep", "600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        own = os.readlink("/proc/self/ns/mnt")
        for _ in range(100):  # until unshare has made the namespace and exec'd sleep
            if holder.poll() is not None:
                pytest.skip(f"no mount namespace here: {holder.stderr.read().decode()}")
            if os.readlink(f"/proc/{holder.pid}/ns/mnt") != own:
                break
            time.sleep(0.05)
        yield ["nsenter", "--target", str(holder.pid), "--mount"]
    finally:
        holder.kill()
        holder.wait()


def _in(namespace: list[str], path: Path, make: bool = False) -> dict:
    """The check's diagnosis and whether the worker opens the database, in the namespace."""
    result = subprocess.run(
        [*namespace, sys.executable, "-c", _AS_USER, str(path), "make" if make else "-"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize("mount", ["bind", "tmpfs"])
def test_a_read_only_mount(tmp_path: Path, namespace: list[str], mount: str) -> None:
    """A read-only bind mount (only that mount is read-only) and a read-only filesystem
    (a tmpfs remounted read-only): each has its own remount command."""
    directory = tmp_path / "geo"
    directory.mkdir()
    database = directory / "tracking.sqlite3"
    if mount == "bind":
        _in(namespace, database, make=True)
        run_ok(["mount", "--bind", "-o", "ro", str(directory), str(directory)], namespace)
    else:
        run_ok(["mount", "-t", "tmpfs", "tmpfs", str(directory)], namespace)
        _in(namespace, database, make=True)
        run_ok(["mount", "-o", "remount,ro", str(directory)], namespace)
    found = _in(namespace, database)
    assert not found["worker"], found
    assert f"{database} is on a read-only mount ({directory})" in found["what"], found
    options = "remount,bind,rw" if mount == "bind" else "remount,rw"
    assert f"as root: `mount -o {options} {directory}`" in found["fix"], found
    for _root, argv in _shell_steps(found["fix"]):
        run_ok(argv, namespace)
    assert _in(namespace, database) == {"what": None, "fix": None, "worker": True}
    assert not os.path.ismount(directory)  # the test's own namespace never saw the mount


# --- as a user who is not root: owner and mode ---------------------------------------------


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory another user can reach (pytest's tmp_path is root's alone)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the check as another user")
    directory = Path(tempfile.mkdtemp(prefix="gdk-geo-tracking-"))
    directory.chmod(0o755)
    try:
        yield directory
    finally:
        shutil.rmtree(directory)


def _as_other_user() -> list[str]:
    account = pwd.getpwnam(OTHER_USER)
    return ["setpriv", f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--clear-groups"]


def _as_user(path: Path, make: bool = False) -> dict:
    return _in(_as_other_user(), path, make)


def _fix_as_written(fix: str) -> None:
    """Each step as the fix says: "as root:" ones as root, the rest as the user."""
    for as_root, argv in _shell_steps(fix):
        run_ok(argv, [] if as_root else _as_other_user())


def test_a_database_its_user_made_read_only(shared_dir: Path) -> None:
    directory = shared_dir / "geo"
    directory.mkdir()
    os.chown(directory, pwd.getpwnam(OTHER_USER).pw_uid, -1)
    database = directory / "tracking.sqlite3"
    _as_user(database, make=True)
    run_ok(["chmod", "a-w", str(database), str(directory)], _as_other_user())
    found = _as_user(database)
    assert not found["worker"], found
    assert f"not writable by {OTHER_USER}, who runs the worker" in found["what"], found
    assert found["fix"].startswith(f"`chmod u+w {database} {directory}`"), found
    _fix_as_written(found["fix"])
    assert _as_user(database) == {"what": None, "fix": None, "worker": True}


def test_a_database_made_by_root_for_a_worker_run_by_a_user(shared_dir: Path) -> None:
    """As after a `sudo invoke geo.setup`: the files are root's, the next worker is not."""
    directory = shared_dir / "geo"
    database = directory / "tracking.sqlite3"
    TrackingDB(database).close()
    found = _as_user(database)
    assert not found["worker"], found
    mode = f"{database.stat().st_mode & 0o777:o}"
    assert f"{database} (owner root, mode {mode})" in found["what"], found
    assert found["fix"].startswith(f"as root: `chown {OTHER_USER} {database} {directory}`")
    _fix_as_written(found["fix"])
    assert _as_user(database) == {"what": None, "fix": None, "worker": True}
