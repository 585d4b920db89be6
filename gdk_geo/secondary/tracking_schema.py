"""The tracking database's file: its tables, their migrations, and what its failures mean.

`gdk_geo.secondary.tracking.TrackingDB` holds the state machine and the queries over this
file; here is what has to be true before the first query runs: the tables exist in their
current shape (a database an older gdk-geo wrote gains the columns it lacks), WAL is on, and
the file can be written, so a read-only file or a full disk stops the worker at start with
its fix instead of at the first event.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gdk_geo.errors import GdkGeoError

# A row whose last sync failed. `<> ''` is false for NULL too, as an empty reason is falsy
# in `gdk_geo.doctor.sync_failures.failing`. The partial index below has this very expression, so
# SQLite uses it for a query that has it too.
FAILING = "(state = 'failed' OR last_sync_failure <> '')"

# A synced row backfill found unchecked for an interval: its re-check (a verification) is
# due. A flag beside the state, not a state: the row stays synced while it waits (issue
# 25 #16). The partial index below holds only flagged rows, by state and last check, so
# counting them for the status and listing them oldest first read only those rows, where
# the index on (state, retry_at) would walk every synced row.
RECHECK_DUE = "(recheck_due = 1 AND state = 'synced')"

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS repositories (
    repository        TEXT PRIMARY KEY,
    state             TEXT NOT NULL CHECK (state IN ('pending', 'started', 'synced', 'failed')),
    retry_count       INTEGER NOT NULL DEFAULT 0,
    retry_at          REAL,
    last_sync_failure TEXT,
    last_synced_at    REAL,
    last_checked_at   REAL,
    checksum          TEXT,
    resync_requested  INTEGER NOT NULL DEFAULT 0,
    urgent            INTEGER NOT NULL DEFAULT 0,
    recheck_due       INTEGER NOT NULL DEFAULT 0,
    created_at        REAL NOT NULL,
    updated_at        REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS repositories_due ON repositories (state, retry_at);
CREATE INDEX IF NOT EXISTS repositories_failing ON repositories (repository) WHERE {FAILING};
CREATE TABLE IF NOT EXISTS event_cursor (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL,
    last_event_at REAL,
    updated_at    REAL NOT NULL,
    log_id        TEXT  -- the primary's event log that last_event_id counts in
);
"""

# Indexes on columns an older database gains in `_add_missing_columns`: made after it.
_LATER_INDEXES = """
CREATE INDEX IF NOT EXISTS repositories_recheck_due ON repositories (state, last_checked_at)
    WHERE recheck_due = 1;
"""


class TrackingDatabaseError(GdkGeoError):
    """The tracking database cannot be opened or written (read-only file, full disk...)."""


def open_tracking_file(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) and migrate; fails now rather than at the first event."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except (OSError, sqlite3.Error) as exc:
        raise tracking_error(path, exc) from None
    conn.row_factory = sqlite3.Row
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.executescript(_SCHEMA)
        _add_missing_columns(conn)
        conn.executescript(_LATER_INDEXES)
        # executescript only writes when a table is missing: prove now that we can write.
        prove_writable(conn)
    except sqlite3.Error as exc:
        conn.close()
        raise tracking_error(path, exc) from None
    return conn


def prove_writable(conn: sqlite3.Connection) -> None:
    """Write the header's user_version back unchanged, then roll back: nothing is kept.

    SQLite opens a file it may not write (immutable, on a read-only mount) read-only without
    a word, and starts even `BEGIN IMMEDIATE` on it; only a write fails. `geo.check` proves
    the worker's database the same way.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        conn.execute(f"PRAGMA user_version = {int(version)}")
    finally:
        conn.execute("ROLLBACK")


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring a database written by an older gdk-geo up to the current table."""
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(repositories)")}
    for column in ("urgent", "recheck_due"):
        if column not in columns:
            conn.execute(f"ALTER TABLE repositories ADD COLUMN {column} INTEGER NOT NULL DEFAULT 0")
    if "log_id" not in {row["name"] for row in conn.execute("PRAGMA table_info(event_cursor)")}:
        conn.execute("ALTER TABLE event_cursor ADD COLUMN log_id TEXT")


def tracking_error(path: Path, exc: BaseException) -> TrackingDatabaseError:
    """Translate an SQLite/OS failure into what the user should check."""
    message = str(exc)
    if "readonly" in message or "read-only" in message:
        fix = f"make {path} and its directory writable by this user"
    elif "disk is full" in message or "No space" in message:
        fix = f"free disk space on the filesystem holding {path}"
    elif "unable to open" in message or isinstance(exc, OSError):
        fix = f"check that {path.parent} exists and is writable"
    elif "malformed" in message or "not a database" in message:
        fix = f"move {path} aside; the worker rebuilds it and backfill re-checks every repository"
    else:
        fix = f"check {path} (permissions, free space)"
    return TrackingDatabaseError(
        f"the Geo tracking database cannot be used: {message}", where=str(path), fix=fix
    )
