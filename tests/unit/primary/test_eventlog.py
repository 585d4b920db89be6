"""The Geo event log on a real SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from gdk_geo.errors import GdkGeoError
from gdk_geo.primary.eventlog import SCHEMA_VERSION, EventLog, GeoEvent, RegistryEvent

DIGEST = "sha256:" + "ab" * 32


def push(event_id: str, repository: str = "group/app", tag: str | None = "v1") -> RegistryEvent:
    return RegistryEvent(event_id, "updated", repository, tag, DIGEST)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "geo" / "events.sqlite3"


@pytest.fixture
def log(log_path: Path) -> Iterator[EventLog]:
    event_log = EventLog(log_path)
    yield event_log
    event_log.close()


def test_a_new_log_is_empty(log: EventLog) -> None:
    assert log.last_id() == 0
    assert log.after(0, 100) == []


def test_record_appends_and_after_returns_them_in_order(log: EventLog) -> None:
    deleted = RegistryEvent("e3", "deleted", "group/app", None, DIGEST)
    assert log.record([push("e1"), push("e2", "group/other", "latest"), deleted]) == 3

    events = log.after(0, 100)

    assert [e.id for e in events] == [1, 2, 3]
    assert events[0] == GeoEvent(1, "updated", "group/app", "v1", DIGEST, events[0].created_at)
    assert (events[1].repository, events[1].tag) == ("group/other", "latest")
    assert (events[2].action, events[2].tag, events[2].digest) == ("deleted", None, DIGEST)
    assert all(e.created_at > 1_600_000_000 for e in events)
    assert log.last_id() == 3


def test_record_skips_registry_event_ids_already_seen(log: EventLog) -> None:
    assert log.record([push("e1"), push("e2")]) == 2
    assert log.record([push("e2"), push("e3")]) == 1
    assert log.record([push("e4"), push("e4")]) == 1  # a repeat within one batch

    assert [e.id for e in log.after(0, 100)] == [1, 2, 3, 4]


def test_record_of_nothing_new_returns_zero(log: EventLog) -> None:
    log.record([push("e1")])
    assert log.record([]) == 0
    assert log.record([push("e1")]) == 0
    assert log.last_id() == 1


def test_after_honours_the_cursor_and_the_limit(log: EventLog) -> None:
    log.record([push(f"e{n}") for n in range(10)])

    assert [e.id for e in log.after(3, 4)] == [4, 5, 6, 7]
    assert [e.id for e in log.after(8, 100)] == [9, 10]
    assert log.after(10, 100) == []


def test_events_survive_reopening_and_ids_keep_growing(log_path: Path) -> None:
    first = EventLog(log_path)
    first.record([push("e1"), push("e2")])
    first.close()

    second = EventLog(log_path)
    try:
        assert [e.id for e in second.after(0, 10)] == [1, 2]
        assert second.record([push("e1"), push("e3")]) == 1  # dedupe survives too
        assert second.last_id() == 3
    finally:
        second.close()


def test_ids_are_never_reused_even_after_the_newest_row_is_gone(log_path: Path) -> None:
    log = EventLog(log_path)
    log.record([push("e1"), push("e2")])
    log.close()
    with sqlite3.connect(log_path) as db:  # as a future pruning job would
        db.execute("DELETE FROM geo_events WHERE id = 2")
    db.close()

    log = EventLog(log_path)
    try:
        log.record([push("e3")])
        assert [e.id for e in log.after(0, 10)] == [1, 3]
    finally:
        log.close()


def test_the_database_is_in_wal_mode_with_a_schema_version(log: EventLog, log_path: Path) -> None:
    db = sqlite3.connect(log_path)
    try:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        db.close()


def test_a_log_from_a_newer_gdk_geo_is_refused(log_path: Path) -> None:
    EventLog(log_path).close()
    db = sqlite3.connect(log_path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()

    with pytest.raises(GdkGeoError, match="schema version"):
        EventLog(log_path)


def test_a_file_that_is_not_a_database_is_a_clear_error(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    log_path.write_bytes(b"this is not sqlite" * 100)

    with pytest.raises(GdkGeoError, match="cannot open the Geo event log") as raised:
        EventLog(log_path)
    assert str(log_path) in raised.value.where


def test_a_failed_batch_records_nothing(log: EventLog) -> None:
    log.record([push("e1")])
    bad = RegistryEvent("e2", "renamed", "group/app")  # type: ignore[arg-type]

    with pytest.raises(sqlite3.IntegrityError):
        log.record([push("e3"), bad])

    assert log.last_id() == 1
    assert log.record([push("e3")]) == 1  # its id was not remembered either


def test_a_log_keeps_its_identity_and_another_log_has_another(
    log_path: Path, tmp_path: Path
) -> None:
    """The identity a secondary's cursor is tied to: the same across restarts of one log,
    different for the log a promoted node starts."""
    first = EventLog(log_path)
    identity = first.identity
    first.record([push("e1")])
    first.close()
    reopened = EventLog(log_path)
    assert reopened.identity == identity
    assert reopened.last_id() == 1
    reopened.close()
    other = EventLog(tmp_path / "other" / "events.sqlite3")
    assert other.identity and other.identity != identity
    other.close()


def test_a_log_of_schema_version_1_gets_an_identity_and_keeps_its_events(log_path: Path) -> None:
    log_path.parent.mkdir(parents=True)
    old = sqlite3.connect(log_path)
    old.executescript(
        "CREATE TABLE geo_events (id INTEGER PRIMARY KEY AUTOINCREMENT, action TEXT NOT NULL,"
        " repository TEXT NOT NULL, tag TEXT NULL, digest TEXT NULL, created_at REAL NOT NULL);"
        " CREATE TABLE received_notifications (event_id TEXT PRIMARY KEY, received_at REAL);"
        " INSERT INTO geo_events (action, repository, tag, digest, created_at)"
        " VALUES ('updated', 'group/app', 'v1', NULL, 1.0); PRAGMA user_version = 1;"
    )
    old.close()
    upgraded = EventLog(log_path)
    assert upgraded.identity
    assert [event.repository for event in upgraded.after(0, 10)] == ["group/app"]
    upgraded.close()
    assert sqlite3.connect(log_path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
