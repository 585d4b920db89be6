"""Atomic file writes: a reader sees the old file or the new one, never half of either."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path


def atomic_write(path: Path, data: str | bytes, *, mode: int = 0o644) -> None:
    """Write `data` to `path` through a temporary file in the same directory and a rename.

    The file gets `mode` before the rename, so a secret never exists with looser permissions,
    and the data is fsynced so a crash cannot leave an empty file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(raw)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_if_changed(path: Path, data: bytes, *, mode: int = 0o644) -> bool:
    """`atomic_write` unless `path` already holds `data`: a file whose bytes are right keeps
    its mtime (what a restart decision or a watcher reads). True when it was written."""
    if path.exists() and path.read_bytes() == data:
        return False
    atomic_write(path, data, mode=mode)
    return True


def copy_if_changed(source: Path, target: Path, *, mode: int) -> bool:
    """Give `target` the bytes of `source` and `mode` unless it has both already (a copy
    that is current keeps its mtime). True when it was written: how a node gets the pairs
    the primary made."""
    data = source.read_bytes()
    current = target.exists() and stat.S_IMODE(target.stat().st_mode) == mode
    if current and target.read_bytes() == data:
        return False
    atomic_write(target, data, mode=mode)
    return True


def files_digest(paths: Iterable[Path]) -> str:
    """SHA-256 over the files' bytes in order, a missing file counted as empty: what a
    process read at start, to tell later whether it still runs what is there now."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes() if path.exists() else b"")
    return digest.hexdigest()
