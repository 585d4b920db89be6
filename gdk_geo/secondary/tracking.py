"""The secondary's tracking database: what to sync, what failed, and how far the event log was read.

One row per repository, the way GitLab's `container_repository_registry` table does it, so a
burst of events for one repository queues one sync, not one per event. The states are

    pending ──claim_due──▶ started ──finish_success──▶ synced
                              │
                              └────finish_failure──▶ failed ──(retry_at passes)──▶ started

and an event that arrives while a sync runs sets `resync_requested`, which sends the row back
to pending when that sync ends: the sync may have listed tags before the new push landed, so
its result cannot stand for the event (GitLab lesson 9). A synced row that backfill finds
unchecked for an interval gets `recheck_due` and stays synced until its re-check (a
verification) finds a difference: "pending" means not yet replicated, never "being
looked at again" (issue 25 #16).

The event cursor lives in the same file and is written in the same transaction as the rows
the events marked, so a crash replays events and never skips one.

SQLite in WAL mode: the status page reads while the scheduler writes, and every write is a
short `BEGIN IMMEDIATE` transaction, so a failure (read-only file, full disk) rolls back and
leaves the file as it was. Such a failure is raised as `TrackingDatabaseError`, a
`GdkGeoError`, because it is something the user fixes, not a bug.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from gdk_geo.registry.backoff import Backoff
from gdk_geo.secondary.snapshot import STATES
from gdk_geo.secondary.tracking_rows import (
    Backfill,
    TrackedRepository,
    backfill_of,
    insert_missing,
    mark_rows_pending,
    resync_requested,
    tracked,
)
from gdk_geo.secondary.tracking_schema import (
    FAILING,
    RECHECK_DUE,
    TrackingDatabaseError,
    open_tracking_file,
    prove_writable,
    tracking_error,
)

# prove_writable: `gdk_geo.doctor.tracking_db_check` proves the file the way the worker does.
__all__ = [
    "STATES",
    "Backfill",
    "TrackedRepository",
    "TrackingDB",
    "TrackingDatabaseError",
    "prove_writable",
]


class TrackingDB:
    """The tracking table and the event cursor in one SQLite file."""

    def __init__(self, path: Path, *, backoff: Backoff | None = None) -> None:
        self.path = path
        self.backoff = backoff or Backoff()
        self._conn = open_tracking_file(path)

    # -- connection -------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; any SQLite failure rolls back and becomes a clear error."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise tracking_error(self.path, exc) from None

    def _read(self, sql: str, params: Iterable[object] = ()) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise tracking_error(self.path, exc) from None

    # -- state machine ----------------------------------------------------------------------

    def mark_pending(
        self, repository: str, now: float | None = None, *, urgent: bool = False
    ) -> None:
        """Queue one sync of `repository`, however many times it is asked for.

        A pending row stays as it is, a started row remembers to sync again when it ends, any
        other row becomes pending (a failed row keeps its retry_count, so the backoff goes on
        growing if the new attempt fails too). `urgent` rows (an event asked for them) are
        claimed before the others, so a push is not queued behind a large backfill.
        """
        self.mark_many_pending([repository], now, urgent=urgent)

    def mark_many_pending(
        self, repositories: Iterable[str], now: float | None = None, *, urgent: bool = False
    ) -> None:
        """`mark_pending` for several repositories in one transaction."""
        with self._write() as conn:
            mark_rows_pending(conn, repositories, _now(now), urgent)

    def apply_events(
        self,
        repositories: Iterable[str],
        last_event_id: int,
        last_event_at: float | None,
        now: float | None = None,
        *,
        log_id: str | None = None,
    ) -> None:
        """Mark the repositories of a page of events pending and advance the cursor, atomically.

        Marking and cursor share one transaction: a crash before the commit replays the page,
        a crash after it has already queued every repository the page named. Event rows are
        urgent: claimed before backfill and verification work.
        """
        with self._write() as conn:
            moment = _now(now)
            mark_rows_pending(conn, repositories, moment, True)
            conn.execute(
                "INSERT INTO event_cursor (id, last_event_id, last_event_at, updated_at, log_id)"
                " VALUES (1, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " last_event_id = excluded.last_event_id,"
                " last_event_at = COALESCE(excluded.last_event_at, last_event_at),"
                " updated_at = excluded.updated_at,"
                " log_id = COALESCE(excluded.log_id, log_id)",
                (last_event_id, last_event_at, moment, log_id),
            )

    def claim_due(self, limit: int, now: float | None = None) -> list[str]:
        """Up to `limit` repositories due now (pending, or failed past retry_at), marked started.

        Pending rows come first, urgent ones (from events) before the rest, oldest first in
        each group: fresh pushes are not starved by retries or by a large backfill.
        """
        if limit <= 0:
            return []
        with self._write() as conn:
            moment = _now(now)
            rows = conn.execute(
                "SELECT repository FROM repositories"
                " WHERE state = 'pending' OR (state = 'failed' AND retry_at <= ?)"
                " ORDER BY state = 'failed', urgent DESC, updated_at LIMIT ?",
                (moment, limit),
            ).fetchall()
            names = [row["repository"] for row in rows]
            conn.executemany(
                "UPDATE repositories SET state = 'started', resync_requested = 0, urgent = 0,"
                " updated_at = ? WHERE repository = ?",
                [(moment, name) for name in names],
            )
        return names

    def start(self, repositories: Iterable[str], now: float | None = None) -> None:
        """Mark named repositories started whatever their state (an explicit `geo.sync`)."""
        with self._write() as conn:
            moment = _now(now)
            for name in repositories:
                insert_missing(conn, name, "started", moment)
                conn.execute(
                    "UPDATE repositories SET state = 'started', resync_requested = 0,"
                    " updated_at = ? WHERE repository = ?",
                    (moment, name),
                )

    def finish_success(
        self, repository: str, checksum: str | None, now: float | None = None
    ) -> str:
        """Record a complete sync; returns the new state (pending when an event came meanwhile)."""
        with self._write() as conn:
            moment = _now(now)
            requested = resync_requested(conn, repository)
            state = "pending" if requested else "synced"
            conn.execute(
                "UPDATE repositories SET state = ?, retry_count = 0, retry_at = NULL,"
                " last_sync_failure = NULL, last_synced_at = ?, last_checked_at = ?,"
                " checksum = ?, resync_requested = 0, recheck_due = 0, updated_at = ?"
                " WHERE repository = ?",
                (state, moment, moment, checksum, moment, repository),
            )
        return state

    def finish_failure(self, repository: str, reason: str, now: float | None = None) -> float:
        """Record a failed sync with its backoff; returns retry_at.

        An event that arrived during the sync still sends the row to pending (retried now),
        but retry_count grows either way so repeated failures keep backing off.
        """
        with self._write() as conn:
            moment = _now(now)
            row = conn.execute(
                "SELECT retry_count, resync_requested FROM repositories WHERE repository = ?",
                (repository,),
            ).fetchone()
            retry_count = row["retry_count"] if row else 0
            retry_at = moment + self.backoff.delay(retry_count)
            state = "pending" if row and row["resync_requested"] else "failed"
            insert_missing(conn, repository, state, moment)
            conn.execute(
                "UPDATE repositories SET state = ?, retry_count = ?, retry_at = ?,"
                " last_sync_failure = ?, resync_requested = 0, updated_at = ?"
                " WHERE repository = ?",
                (state, retry_count + 1, retry_at, reason, moment, repository),
            )
        return retry_at

    def mark_checked(self, repository: str, checksum: str, now: float | None = None) -> None:
        """Verification found both sides equal: remember when, so backfill leaves it alone
        for an interval, and its re-check is no longer due. A repository without a row keeps
        none: a row records what sync did (`gdk_geo.secondary.verify.record_verification`)."""
        with self._write() as conn:
            moment = _now(now)
            conn.execute(
                "UPDATE repositories SET last_checked_at = ?, checksum = ?, recheck_due = 0,"
                " updated_at = ? WHERE repository = ?",
                (moment, checksum, moment, repository),
            )

    def backfill(
        self, catalog: Iterable[str], older_than: float, now: float | None = None
    ) -> Backfill:
        """Backfill the primary's catalog: queue what is not replicated, flag re-checks.

        Never-seen names and failed rows past their retry time become pending; synced rows
        not checked for `older_than` seconds get `recheck_due` and stay synced (`Backfill`).
        One transaction, so the worker's scheduler never claims half a backfill.
        """
        with self._write() as conn:
            moment = _now(now)
            rows = conn.execute(
                "SELECT repository, state, retry_at, last_checked_at FROM repositories"
            ).fetchall()
            found = backfill_of(
                catalog, {row["repository"]: row for row in rows}, older_than, moment
            )
            mark_rows_pending(conn, found.queued, moment, False)
            conn.executemany(
                "UPDATE repositories SET recheck_due = 1 WHERE repository = ?",
                [(name,) for name in found.rechecks],
            )
        return found

    def recover_stale_started(self, now: float | None = None) -> list[str]:
        """Rows left `started` by a worker that died mid-sync go back to pending.

        Called once at worker start (and at clean shutdown for syncs that were cancelled),
        when no sync of this worker can be running.
        """
        with self._write() as conn:
            rows = conn.execute(
                "SELECT repository FROM repositories WHERE state = 'started'"
            ).fetchall()
            conn.execute(
                "UPDATE repositories SET state = 'pending', resync_requested = 0, updated_at = ?"
                " WHERE state = 'started'",
                (_now(now),),
            )
        return [row["repository"] for row in rows]

    def remove(self, repository: str) -> None:
        """Forget a repository (it no longer exists on the primary)."""
        with self._write() as conn:
            conn.execute("DELETE FROM repositories WHERE repository = ?", (repository,))

    # -- queries ----------------------------------------------------------------------------

    def next_retry_at(self) -> float | None:
        """The earliest retry_at of a failed row: when the scheduler must look again."""
        rows = self._read("SELECT MIN(retry_at) AS at FROM repositories WHERE state = 'failed'")
        return rows[0]["at"]

    def repositories_in(self, state: str) -> list[str]:
        rows = self._read(
            "SELECT repository FROM repositories WHERE state = ? ORDER BY repository", (state,)
        )
        return [row["repository"] for row in rows]

    def get(self, repository: str) -> TrackedRepository | None:
        rows = self._read("SELECT * FROM repositories WHERE repository = ?", (repository,))
        return tracked(rows[0]) if rows else None

    def rows(self) -> list[TrackedRepository]:
        rows = self._read("SELECT * FROM repositories ORDER BY repository")
        return [tracked(row) for row in rows]

    def failing_rows(self) -> list[TrackedRepository]:
        """Rows whose last sync failed: failed, or pending or started again since.

        What `geo.check` names (`gdk_geo.doctor.sync_failures.failing` is the same test on rows);
        the partial index `repositories_failing` keeps this off the synced rows.
        """
        rows = self._read(f"SELECT * FROM repositories WHERE {FAILING} ORDER BY repository")
        return [tracked(row) for row in rows]

    def repositories_due_for_recheck(self) -> list[str]:
        """Synced repositories whose re-check backfill found due, least recently checked first."""
        rows = self._read(
            f"SELECT repository FROM repositories WHERE {RECHECK_DUE} ORDER BY last_checked_at"
        )
        return [row["repository"] for row in rows]

    def rechecks_due(self) -> int:
        """How many re-checks are due (counted by SQLite, from their partial index)."""
        return self._read(f"SELECT COUNT(*) AS n FROM repositories WHERE {RECHECK_DUE}")[0]["n"]

    def counts(self) -> dict[str, int]:
        """Repositories per state, every state present (zero when empty)."""
        counts = dict.fromkeys(STATES, 0)
        for row in self._read("SELECT state, COUNT(*) AS n FROM repositories GROUP BY state"):
            counts[row["state"]] = row["n"]
        return counts

    def cursor(self) -> int:
        """The id of the last event whose repository is queued (0 before the first event)."""
        rows = self._read("SELECT last_event_id FROM event_cursor WHERE id = 1")
        return rows[0]["last_event_id"] if rows else 0

    def cursor_log(self) -> str | None:
        """The identity of the event log the cursor counts in (None before it was told)."""
        rows = self._read("SELECT log_id FROM event_cursor WHERE id = 1")
        return rows[0]["log_id"] if rows else None

    def last_event_at(self) -> float | None:
        """When the primary recorded the last event we processed (for the "event age" gauge)."""
        rows = self._read("SELECT last_event_at FROM event_cursor WHERE id = 1")
        return rows[0]["last_event_at"] if rows else None


def _now(now: float | None) -> float:
    return time.time() if now is None else now
