"""The tracking table's rows: their Python shape, and the statements several writes share.

`gdk_geo.secondary.tracking.TrackingDB` runs these inside its write transactions; they take
the connection, so a caller's transaction covers everything they do. Backfill's decision
(what to queue for sync, what to re-check) lives here too, apart from its SQL, so it reads
as the rule it is.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, fields

from gdk_geo.secondary.snapshot import RepositoryStatus


@dataclass(frozen=True)
class TrackedRepository(RepositoryStatus):
    """One row of the tracking table: its status, and when it was first seen."""

    created_at: float

    def status(self) -> RepositoryStatus:
        """The row as the status shows it (without its creation time)."""
        return RepositoryStatus(**{f.name: getattr(self, f.name) for f in _STATUS_FIELDS})


_STATUS_FIELDS = fields(RepositoryStatus)


@dataclass(frozen=True)
class Backfill:
    """What one backfill found in the primary's catalog.

    `queued`: not replicated (never seen, or failed and past its retry time), now pending.
    `rechecks`: synced but not checked for an interval, now due for a re-check. They stay
    synced: their content matched when last looked at, and a re-check is a verification,
    not a sync (issue 25 #16). Only a re-check that finds a difference makes one pending.
    """

    queued: list[str]
    rechecks: list[str]


def backfill_of(
    catalog: Iterable[str], known: dict[str, sqlite3.Row], older_than: float, now: float
) -> Backfill:
    """Sort the catalog's names by what backfill does with them (`known`: their rows).

    Pending and started rows are on their way already and are left alone.
    """
    queued: list[str] = []
    rechecks: list[str] = []
    for name in dict.fromkeys(catalog):
        row = known.get(name)
        if row is None or (row["state"] == "failed" and (row["retry_at"] or 0) <= now):
            queued.append(name)
        elif row["state"] == "synced" and (row["last_checked_at"] or 0) <= now - older_than:
            rechecks.append(name)
    return Backfill(queued, rechecks)


def insert_missing(conn: sqlite3.Connection, name: str, state: str, now: float) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO repositories (repository, state, created_at, updated_at)"
        " VALUES (?, ?, ?, ?)",
        (name, state, now, now),
    )


def mark_rows_pending(
    conn: sqlite3.Connection, repositories: Iterable[str], now: float, urgent: bool
) -> None:
    """`TrackingDB.mark_pending`'s statements, for each of `repositories`."""
    for name in dict.fromkeys(repositories):
        insert_missing(conn, name, "pending", now)
        conn.execute(
            "UPDATE repositories SET resync_requested = 1, updated_at = ?"
            " WHERE repository = ? AND state = 'started'",
            (now, name),
        )
        conn.execute(
            "UPDATE repositories SET state = 'pending', updated_at = ?"
            " WHERE repository = ? AND state IN ('synced', 'failed')",
            (now, name),
        )
        if urgent:
            conn.execute(
                "UPDATE repositories SET urgent = 1 WHERE repository = ? AND state = 'pending'",
                (name,),
            )


def resync_requested(conn: sqlite3.Connection, repository: str) -> bool:
    row = conn.execute(
        "SELECT resync_requested FROM repositories WHERE repository = ?", (repository,)
    ).fetchone()
    return bool(row and row["resync_requested"])


def tracked(row: sqlite3.Row) -> TrackedRepository:
    return TrackedRepository(
        repository=row["repository"],
        state=row["state"],
        retry_count=row["retry_count"],
        retry_at=row["retry_at"],
        last_sync_failure=row["last_sync_failure"],
        last_synced_at=row["last_synced_at"],
        last_checked_at=row["last_checked_at"],
        checksum=row["checksum"],
        resync_requested=bool(row["resync_requested"]),
        urgent=bool(row["urgent"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
