"""Verification states and the paged listing of tracked repositories (worker API, admin page).

GitLab keeps a verification state beside each registry row (pending, succeeded, failed) and
lists rows by sync and verification state with keyset paging. The verification outcome is
kept in a table of its own in the tracking database file, beside `repositories`, so the
sync state machine (`gdk_geo.secondary.tracking`) stays as it is: a passed verification older
than the repository's last sync counts as pending again, since that sync may have changed
the tags it vouched for. Whoever syncs (the worker, `geo.sync` in-process) needs no hook.

Keyset paging (`repository > after ORDER BY repository LIMIT n`) reads only one page from
the primary key, where OFFSET would walk every earlier row: page 200 of 10,000 repositories
costs what page 1 does.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdk_geo.secondary.results import failure_line
from gdk_geo.secondary.snapshot import VERIFICATION_STATES
from gdk_geo.secondary.tracking import STATES
from gdk_geo.secondary.tracking_schema import tracking_error

MAX_PER_PAGE = 200

_SCHEMA = """
CREATE TABLE IF NOT EXISTS verification (
    repository  TEXT PRIMARY KEY,
    state       TEXT NOT NULL CHECK (state IN ('succeeded', 'failed')),
    failure     TEXT,
    verified_at REAL NOT NULL
);
"""

# The effective verification state of a joined row (r: repositories, v: verification). A
# failure stands until a verification passes, so the failed filter and "Reverify all failed"
# still find a repository whose mismatch the worker has since resynced.
_VERIFICATION_STATE = (
    "CASE WHEN v.state IS NULL THEN 'pending'"
    " WHEN v.state = 'succeeded' AND r.last_synced_at > v.verified_at THEN 'pending'"
    " ELSE v.state END"
)

_COLUMNS = (
    "r.repository, r.state, r.retry_count, r.retry_at, r.last_sync_failure, r.last_synced_at,"
    " r.last_checked_at, r.updated_at, v.verified_at AS last_verified_at,"
    f" {_VERIFICATION_STATE} AS verification_state,"
    f" CASE WHEN ({_VERIFICATION_STATE}) = 'failed' THEN v.failure END AS verification_failure"
)


@dataclass(frozen=True)
class Filters:
    """Which rows a listing shows: by sync state, verification state, and name."""

    state: str | None = None
    verification_state: str | None = None
    search: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        if self.verification_state is not None and (
            self.verification_state not in VERIFICATION_STATES
        ):
            raise ValueError(f"verification_state must be one of {', '.join(VERIFICATION_STATES)}")


@dataclass(frozen=True)
class Page:
    """One page of rows, and the keyset cursor of the next (None on the last page)."""

    rows: list[dict[str, Any]]
    next_after: str | None


class RepositoryIndex:
    """Reads and writes the verification table; lists repositories with their states.

    Its own connection to the tracking database file (WAL: readers never wait for the
    scheduler's writes), opened by the worker beside `TrackingDB`. Its failures read as
    `TrackingDB`'s (`tracking_error`): the same file, the same causes, the same fixes.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 5000")
            self._conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise tracking_error(path, exc) from None

    def close(self) -> None:
        self._conn.close()

    def record(self, repository: str, ok: bool, failure: str | None = None) -> None:
        """Remember a verification's outcome (a failure with its one-line reason)."""
        text = None if ok else failure_line(failure or "differs from the primary")
        self._execute(
            "INSERT INTO verification (repository, state, failure, verified_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (repository) DO UPDATE SET"
            " state = excluded.state, failure = excluded.failure,"
            " verified_at = excluded.verified_at",
            (repository, "succeeded" if ok else "failed", text, time.time()),
        )

    def page(self, filters: Filters, after: str | None = None, per_page: int = 50) -> Page:
        """Rows matching `filters` whose name sorts after `after`, at most `per_page`."""
        per_page = max(1, min(MAX_PER_PAGE, per_page))
        where, params = _where(filters)
        if after:
            where.append("r.repository > ?")
            params.append(after)
        sql = (
            f"SELECT {_COLUMNS} FROM repositories r"
            " LEFT JOIN verification v ON v.repository = r.repository"
            f"{' WHERE ' + ' AND '.join(where) if where else ''}"
            " ORDER BY r.repository LIMIT ?"
        )
        rows = [dict(row) for row in self._query(sql, [*params, per_page + 1])]
        more = len(rows) > per_page
        rows = rows[:per_page]
        return Page(rows, rows[-1]["repository"] if more else None)

    def names(self, filters: Filters) -> list[str]:
        """Every repository matching `filters` (what "all failed" acts on)."""
        where, params = _where(filters)
        sql = (
            "SELECT r.repository FROM repositories r"
            " LEFT JOIN verification v ON v.repository = r.repository"
            f"{' WHERE ' + ' AND '.join(where) if where else ''} ORDER BY r.repository"
        )
        return [row["repository"] for row in self._query(sql, params)]

    def verification_counts(self) -> dict[str, int]:
        """Repositories per verification state, every state present."""
        counts = dict.fromkeys(VERIFICATION_STATES, 0)
        sql = (
            f"SELECT {_VERIFICATION_STATE} AS s, COUNT(*) AS n FROM repositories r"
            " LEFT JOIN verification v ON v.repository = r.repository GROUP BY s"
        )
        for row in self._query(sql, []):
            counts[row["s"]] = row["n"]
        return counts

    def _query(self, sql: str, params: Iterable[object]) -> list[sqlite3.Row]:
        try:
            return self._conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise tracking_error(self.path, exc) from None

    def _execute(self, sql: str, params: tuple[object, ...]) -> None:
        try:
            self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise tracking_error(self.path, exc) from None


def _where(filters: Filters) -> tuple[list[str], list[object]]:
    where: list[str] = []
    params: list[object] = []
    if filters.state:
        where.append("r.state = ?")
        params.append(filters.state)
    if filters.verification_state:
        where.append(f"({_VERIFICATION_STATE}) = ?")
        params.append(filters.verification_state)
    if filters.search:
        where.append("r.repository LIKE ? ESCAPE '\\'")
        params.append("%" + _like_literal(filters.search) + "%")
    return where, params


def _like_literal(text: str) -> str:
    """`text` matched literally by LIKE: `_` and `%` are common in repository names."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
