"""The primary's Geo event log: an append-only SQLite table the secondary reads in order.

The registry's notifications are delivered at least once, so the log remembers every
registry event id it has recorded and skips repeats. Ids of the log itself come from an
`AUTOINCREMENT` key: they only grow and are never reused, which lets a secondary keep a
single cursor ("everything after id N") and never miss or re-read an event.

Those ids mean something only within one log, so each log carries an identity of its own
(`log_id`, random, made with the log): a node promoted to primary starts a log whose ids
begin again, and a secondary that sees a new identity restarts its cursor instead of
reading the new log's ids as if they continued the old one's.

Durability: the service answers the registry only after `record` returns, and the registry
then forgets the event. The database therefore runs in WAL mode with `synchronous=FULL`,
which fsyncs the WAL on every commit; WAL with `NORMAL` would be consistent after a power
loss but could drop the last commits, which is exactly the promise we make to the registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gdk_geo.errors import GdkGeoError

SCHEMA_VERSION = 2  # 2: the log's identity (`log_identity`)

Action = Literal["updated", "deleted"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS geo_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    action TEXT NOT NULL CHECK (action IN ('updated', 'deleted')),
    repository TEXT NOT NULL,
    tag TEXT NULL,
    digest TEXT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS received_notifications (
    event_id TEXT PRIMARY KEY,
    received_at REAL NOT NULL
);
"""

_IDENTITY = """
CREATE TABLE IF NOT EXISTS log_identity (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    log_id TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class RegistryEvent:
    """A registry notification already checked and translated into the log's vocabulary."""

    event_id: str
    action: Action
    repository: str
    tag: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class GeoEvent:
    """One entry of the Geo event log, as the event API serves it."""

    id: int
    action: Action
    repository: str
    tag: str | None
    digest: str | None
    created_at: float


class EventLog:
    """The event log database of one primary node.

    One connection, used by one thread at a time: the service calls it from its event loop
    only (`check_same_thread=False` because the loop may run in another thread than the one
    that opened the log, as under a test client).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise self._unusable(exc) from None
        try:
            self._configure()
            self._migrate()
        except sqlite3.Error as exc:
            self._db.close()
            raise self._unusable(exc) from None
        except BaseException:
            self._db.close()
            raise

    def _unusable(self, exc: Exception) -> GdkGeoError:
        return GdkGeoError(
            f"cannot open the Geo event log: {exc}",
            where=str(self.path),
            fix="move the file away; the primary starts a new log (backfill repairs the rest)",
        )

    def _configure(self) -> None:
        """WAL lets the event API read while a notification writes; FULL makes commits durable."""
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode != "wal":
            raise sqlite3.OperationalError(f"journal mode is {mode!r}, WAL is needed")
        self._db.execute("PRAGMA synchronous=FULL")

    def _migrate(self) -> None:
        """Create the schema on first use; refuse a log written by a newer gdk-geo."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise GdkGeoError(
                f"the Geo event log has schema version {version}, this gdk-geo knows "
                f"{SCHEMA_VERSION}",
                where=str(self.path),
                fix="update gdk-geo, or move the file away to start a new log",
            )
        if version < SCHEMA_VERSION:
            # a log of version 1 gets its identity now: its secondaries' cursors, which
            # carry none yet, adopt it and read on from where they were
            self._db.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} {_IDENTITY}"
                f" INSERT OR IGNORE INTO log_identity (id, log_id) VALUES (1, '{uuid.uuid4()}');"
                f" PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        self.identity: str = self._db.execute(
            "SELECT log_id FROM log_identity WHERE id = 1"
        ).fetchone()[0]

    def record(self, events: Sequence[RegistryEvent]) -> int:
        """Append the events not seen before, in one transaction; return how many were new.

        The transaction is committed (and fsynced) before this returns, so a 200 sent to the
        registry afterwards never loses an event. Repeats, within this batch or of an earlier
        one, are skipped by their registry event id.
        """
        now = time.time()
        new = 0
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for event in events:
                seen = self._db.execute(
                    "INSERT OR IGNORE INTO received_notifications (event_id, received_at) "
                    "VALUES (?, ?)",
                    (event.event_id, now),
                )
                if seen.rowcount == 0:
                    continue
                self._db.execute(
                    "INSERT INTO geo_events (action, repository, tag, digest, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (event.action, event.repository, event.tag, event.digest, now),
                )
                new += 1
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return new

    def after(self, event_id: int, limit: int) -> list[GeoEvent]:
        """The events with an id greater than `event_id`, oldest first, at most `limit`."""
        rows = self._db.execute(
            "SELECT id, action, repository, tag, digest, created_at FROM geo_events "
            "WHERE id > ? ORDER BY id LIMIT ?",
            (event_id, limit),
        )
        return [GeoEvent(*row) for row in rows]

    def last_id(self) -> int:
        """The id of the newest event, 0 when the log is empty."""
        return self._db.execute("SELECT COALESCE(MAX(id), 0) FROM geo_events").fetchone()[0]

    def close(self) -> None:
        """Close the database; the WAL is checkpointed into the main file."""
        self._db.close()


class LogWatch:
    """Wakes the long-polls when the log grows, or when the service stops.

    Each change sets the current `asyncio.Event` and puts a fresh one in its place, so a
    waiter is woken by the first change after it started waiting, and never by an old one.
    `waiting` counts the long-polls waiting now (`/-/metrics`): how many secondaries are
    connected, and what a test waits on before it changes the log.
    """

    def __init__(self) -> None:
        self._changed = asyncio.Event()
        self.stopped = False
        self.waiting = 0

    def notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def stop(self) -> None:
        self.stopped = True
        self._changed.set()

    async def wait(self, timeout: float) -> None:
        """Return at the next change, or after `timeout` seconds."""
        self.waiting += 1
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), timeout)
        finally:
            self.waiting -= 1
