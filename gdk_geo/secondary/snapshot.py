"""The secondary worker's status: one typed snapshot, read by every view of it.

The worker takes a `StatusSnapshot` per request (`gdk_geo.secondary.worker.Worker.status`);
the status page renders it as JSON, Prometheus metrics and the admin page; the CLI reads the
JSON back with `StatusSnapshot.from_json` (`geo.status`, `geo.check`). The JSON keys are a
contract: `to_json` writes them and `from_json` reads them, nothing else spells them.

Nothing here imports the rest of gdk_geo, so the CLI can read a snapshot cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from gdk_geo.secondary.results import Totals

STATES = ("pending", "started", "synced", "failed")
VERIFICATION_STATES = ("pending", "succeeded", "failed")

# Which repository rows a snapshot carries. Its counts never need rows; "failing" (failed,
# or being retried after a failure) is what `geo.check` names and stays small while
# replication works; "all" costs a row per tracked repository and is asked for explicitly.
Rows = Literal["none", "failing", "all"]
ROW_SELECTIONS: tuple[Rows, ...] = ("none", "failing", "all")


@dataclass(frozen=True)
class FeedState:
    """Whether the worker reads the primary's event API, and why not when it does not."""

    connected: bool = False
    error: str | None = None


@dataclass(frozen=True)
class RepositoryStatus:
    """One repository's row of the tracking database, as the status shows it.

    `gdk_geo.secondary.tracking.TrackedRepository` is this plus the row's creation time.
    """

    repository: str
    state: str
    retry_count: int
    retry_at: float | None
    last_sync_failure: str | None
    last_synced_at: float | None
    last_checked_at: float | None
    checksum: str | None
    resync_requested: bool
    urgent: bool
    updated_at: float


@dataclass(frozen=True)
class StatusSnapshot:
    """The replication status at one moment.

    `repositories` holds the rows it was taken with (`Rows`): the failing ones in
    `/api/v4/geo/replication/status`, every one with `?repositories=all`.
    """

    replication_enabled: bool
    primary_api_url: str
    registry_api_url: str
    cursor: int = 0
    primary_last_event_id: int | None = None
    last_event_at: float | None = None
    last_event_age_seconds: float | None = None  # at the moment the snapshot was taken
    event_feed: FeedState = field(default_factory=FeedState)
    last_backfill_at: float | None = None
    backfill_error: str | None = None
    last_verification_at: float | None = None
    counts: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(STATES, 0))
    verification_counts: Mapping[str, int] = field(
        default_factory=lambda: dict.fromkeys(VERIFICATION_STATES, 0)
    )
    # Synced repositories backfill found unchecked for an interval, their re-check not yet
    # run: counted apart, since they stay synced while they wait (issue 25 #16).
    rechecks_due: int = 0
    totals: Totals = field(default_factory=Totals)
    repositories: tuple[RepositoryStatus, ...] = ()

    @property
    def lag(self) -> int | None:
        """Events the primary has that the worker has not read (None before the first poll)."""
        if self.primary_last_event_id is None:
            return None
        return max(0, self.primary_last_event_id - self.cursor)

    def to_json(self) -> dict[str, Any]:
        """The snapshot as `/api/v4/geo/replication/status` serves it."""
        return {
            "node": "secondary",
            "replication_enabled": self.replication_enabled,
            "primary_api_url": self.primary_api_url,
            "registry_api_url": self.registry_api_url,
            "cursor": self.cursor,
            "primary_last_event_id": self.primary_last_event_id,
            "lag": self.lag,
            "last_event_at": self.last_event_at,
            "last_event_age_seconds": self.last_event_age_seconds,
            "event_feed": asdict(self.event_feed),
            "last_backfill_at": self.last_backfill_at,
            "backfill_error": self.backfill_error,
            "last_verification_at": self.last_verification_at,
            "counts": dict(self.counts),
            "verification_counts": dict(self.verification_counts),
            "rechecks_due": self.rechecks_due,
            "totals": asdict(self.totals),
            "repositories": [_row_json(row) for row in self.repositories],
        }

    @classmethod
    def from_json(cls, data: object) -> StatusSnapshot:
        """A snapshot read back from `to_json`'s output; `ValueError` when it is not one.

        `repositories` may be left out (`geo.status` drops the rows); unknown keys are ignored
        so a reader keeps working against a newer worker.
        """
        try:
            if not isinstance(data, dict):
                raise TypeError("not a JSON object")
            return cls(
                replication_enabled=bool(data["replication_enabled"]),
                primary_api_url=str(data.get("primary_api_url", "")),
                registry_api_url=str(data.get("registry_api_url", "")),
                cursor=int(data["cursor"]),
                primary_last_event_id=_optional(int, data.get("primary_last_event_id")),
                last_event_at=_optional(float, data.get("last_event_at")),
                last_event_age_seconds=_optional(float, data.get("last_event_age_seconds")),
                event_feed=FeedState(**_known(FeedState, data.get("event_feed") or {})),
                last_backfill_at=_optional(float, data.get("last_backfill_at")),
                backfill_error=data.get("backfill_error"),
                last_verification_at=_optional(float, data.get("last_verification_at")),
                counts={state: int(n) for state, n in (data.get("counts") or {}).items()},
                verification_counts={
                    state: int(n)
                    for state, n in (
                        data.get("verification_counts") or dict.fromkeys(VERIFICATION_STATES, 0)
                    ).items()
                },
                rechecks_due=int(data.get("rechecks_due") or 0),  # an older worker's has none
                totals=Totals(**_known(Totals, data.get("totals") or {})),
                repositories=tuple(
                    RepositoryStatus(**_known(RepositoryStatus, row))
                    for row in data.get("repositories") or []
                ),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"not a replication status: {exc}") from exc


_ROW_FIELDS = tuple(f.name for f in fields(RepositoryStatus))


def _row_json(row: RepositoryStatus) -> dict[str, Any]:
    """`asdict` for a row of plain values, without its deep copy (a row per repository)."""
    return {name: getattr(row, name) for name in _ROW_FIELDS}


def _known(kind: type, values: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {key: value for key, value in values.items() if key in names}


def _optional(convert: type, value: Any) -> Any:
    return None if value is None else convert(value)
