"""`geo.check`'s tracking-database check: can the worker write its database, and if not, why.

The worker meets its database as the user who runs it (`geo.setup` starts the worker as
its caller): it opens the file, or creates it and the directories above it, and writes.
So the probe does the same, minus keeping anything: it starts a write transaction, makes a
real write (SQLite opens a file it may not write read-only without a word, and starts a
transaction on it, so only a write tells) and rolls it back. Mode bits alone are not the
test: root writes through 0444, and a worker run by root does.

When the probe fails, the cause is found from the facts on disk, in the order the kernel
refuses a write: a read-only mount, an immutable or append-only attribute, then the owner
and mode. Each cause has its own fix, with the exact paths, because "make it writable"
fixes none of them for a user who does not know which one it is.
"""

from __future__ import annotations

import fcntl
import os
import pwd
import shlex
import sqlite3
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

from gdk_geo.secondary.tracking import prove_writable

RESTART = "`invoke geo.restart --node secondary`"
FS_IOC_GETFLAGS = 0x80086601  # linux/fs.h: _IOR('f', 1, long)
IMMUTABLE_FLAGS = 0x10 | 0x20  # FS_IMMUTABLE_FL | FS_APPEND_FL: `chattr -ia` clears both
DAMAGED = {"SQLITE_NOTADB", "SQLITE_CORRUPT"}


@dataclass(frozen=True)
class DatabaseProblem:
    """Why the worker cannot write its tracking database, and the fix for that cause."""

    what: str
    fix: str = ""  # empty: the check's declared fix, for a cause not recognised


def diagnose(path: Path) -> DatabaseProblem | None:
    """What would stop the worker writing its tracking database at `path`, or None."""
    if path.exists():
        try:
            _try_write(path)
        except sqlite3.Error as exc:
            return _unwritable(path, exc)
        return None
    try:
        _try_create(path.parent)
    except OSError as exc:
        return _uncreatable(path, exc)
    return None


def _try_write(path: Path) -> None:
    """Open the file (never creating it) and write nothing, as the worker proves it at start."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=5.0)
    try:
        prove_writable(connection)
    finally:
        connection.close()


def _try_create(directory: Path) -> None:
    """Create `directory` (and missing parents) and a file in it, then remove them all."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    created: list[Path] = []
    try:
        for each in reversed(missing):
            each.mkdir()
            created.append(each)
        with tempfile.TemporaryFile(dir=directory):
            pass
    finally:
        for each in reversed(created):
            each.rmdir()


def _unwritable(path: Path, exc: sqlite3.Error) -> DatabaseProblem:
    if getattr(exc, "sqlite_errorname", "") in DAMAGED:
        return _damaged(path, exc)
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    cause = _refusal([*files, path.parent])
    return cause or DatabaseProblem(f"{path}: {exc}")


def _uncreatable(path: Path, exc: OSError) -> DatabaseProblem:
    directory = _existing_parent(path)  # the nearest that exists: a file, when ENOTDIR
    if not directory.is_dir():
        return DatabaseProblem(
            f"{directory} is a file where the worker needs a directory for {path}",
            f"move the file aside: `mv {_q(directory)} {_q(Path(f'{directory}.moved'))}`, "
            f"then {RESTART}",
        )
    cause = _refusal([directory])
    return cause or DatabaseProblem(
        f"{path} does not exist yet and cannot be created in {directory} ({exc.strerror})"
    )


def _damaged(path: Path, exc: sqlite3.Error) -> DatabaseProblem:
    files = [p for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()]
    moves = ", ".join(f"`mv {_q(p)} {_q(Path(f'{p}.damaged'))}`" for p in files)
    return DatabaseProblem(
        f"{path} is not a usable SQLite database ({exc})",
        f"move it aside: {moves}, then {RESTART} (the worker makes a new one, and its "
        "backfill at start re-checks every repository in the primary's catalog)",
    )


def _refusal(paths: list[Path]) -> DatabaseProblem | None:
    """The first reason the kernel refuses this user a write to one of `paths`, with its fix."""
    return _read_only_mount(paths) or _immutable(paths) or _not_permitted(paths)


def _read_only_mount(paths: list[Path]) -> DatabaseProblem | None:
    for each in paths:
        if os.statvfs(each).f_flag & os.ST_RDONLY:
            mount, whole_filesystem = _mount_of(each)
            options = "remount,rw" if whole_filesystem else "remount,bind,rw"
            return DatabaseProblem(
                f"{each} is on a read-only mount ({mount})",
                f"as root: `mount -o {options} {_q(mount)}`, then {RESTART}",
            )
    return None


def _immutable(paths: list[Path]) -> DatabaseProblem | None:
    flagged = [p for p in paths if _attributes(p) & IMMUTABLE_FLAGS]
    if not flagged:
        return None
    return DatabaseProblem(
        f"{', '.join(map(str, flagged))}: immutable or append-only (lsattr -d shows i or a)",
        f"as root: `chattr -ia {_join(flagged)}`, then {RESTART}",
    )


def _not_permitted(paths: list[Path]) -> DatabaseProblem | None:
    refused = [p for p in paths if not os.access(p, os.W_OK)]
    if not refused:
        return None
    user = pwd.getpwuid(os.geteuid()).pw_name
    others = [p for p in refused if p.stat().st_uid != os.geteuid()]
    found = [f"{p} (owner {_owner(p)}, mode {p.stat().st_mode & 0o777:o})" for p in refused]
    steps = [f"as root: `chown {user} {_join(others)}`"] if others else []
    steps.append(f"`chmod u+w {_join(refused)}`")
    return DatabaseProblem(
        f"not writable by {user}, who runs the worker: {', '.join(found)}",
        f"{', then '.join(steps)}, then {RESTART}",
    )


def _attributes(path: Path) -> int:
    """The file's `chattr` flags, or 0 where the filesystem has none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(fd, FS_IOC_GETFLAGS, bytes(8))[:4])[0]
    except OSError:
        return 0
    finally:
        os.close(fd)


def _mount_of(path: Path) -> tuple[Path, bool]:
    """The mount point holding `path`, and whether its whole filesystem is read-only (else
    only this mount is: a read-only bind mount)."""
    resolved, best = path.resolve(), (Path("/"), True)
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return best
    length = -1
    for line in lines:
        fields = line.split()
        point = Path(fields[4].encode().decode("unicode_escape"))
        super_options = fields[-1].split(",")
        if (resolved == point or point in resolved.parents) and len(point.parts) > length:
            best, length = (point, "ro" in super_options), len(point.parts)
    return best


def _owner(path: Path) -> str:
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _existing_parent(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _join(paths: list[Path]) -> str:
    return " ".join(_q(p) for p in paths)
