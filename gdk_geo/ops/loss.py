"""What a forced promotion may lose, in words: the loss report of `geo.promote --force`.

A forced promotion does not wait for its target to catch up, so the old primary may hold
tags its successor lacks. The report is read from the old primary's own registry after it
stopped taking pushes (`gdk_geo.ops.unplanned`): every push it acknowledged is then either
on the new primary or named here. When that registry cannot be read, the report says it is
incomplete and falls back on the old primary's event log (the pushes the new primary never
read), which misses a push whose notification never reached the log.

Here are the data and their words only; reading the registries is `ops.reconcile.held`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from gdk_geo.errors import GdkGeoError
from gdk_geo.project import EVENT_LOG, TRACKING_DB, Project
from gdk_geo.runtime.placement import Placement
from gdk_geo.settings import Settings

EVENTS_READ_AT_MOST = 10_000  # the fallback lists at most this many unread pushes


@dataclass(frozen=True)
class Held:
    """One tag a node has that the primary lacks, or has at another digest."""

    repository: str
    tag: str
    digest: str
    primary_digest: str | None = None  # None: the primary has no such tag
    why: str = ""  # how it was found, when not by comparing the registries

    def line(self, primary: str = "the primary") -> str:
        """`repo:tag digest (how it differs from `primary`)`, one line."""
        if self.why:
            how = self.why
        elif self.primary_digest:
            how = f"{primary} has {self.primary_digest}"
        else:
            how = f"absent on {primary}"
        return f"{self.repository}:{self.tag} {self.digest} ({how})"


@dataclass(frozen=True)
class LossReport:
    """The tags the old primary holds that the new one lacks, and how far to trust that.

    `unreadable` is why the old primary's registry could not be read (empty when it was:
    then the report is complete); `from_event_log` says `held` came from its event log
    instead. `others` are the other secondaries: they replicate from the new primary now
    and drop what it lacks, so every held tag ends up on the fenced old primary alone.
    """

    old: str
    new: str
    held: tuple[Held, ...] = ()
    unreadable: str = ""
    from_event_log: bool = False
    others: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.unreadable

    def lines(self) -> list[str]:
        """The report as the task prints it: one tag a line, then what follows from it."""
        if self.complete:
            return self._complete_lines()
        return self._incomplete_lines()

    def _complete_lines(self) -> list[str]:
        if not self.held:
            return [f"nothing lost: every tag of the old primary {self.old} is on {self.new}"]
        read = f"read from {self.old}'s registry after it stopped taking pushes"
        head = f"{len(self.held)} tags {self.old} holds that {self.new} lacks ({read}):"
        return [head, *self._tag_lines(), *self._after_lines()]

    def _incomplete_lines(self) -> list[str]:
        lines = [
            f"the report cannot be complete: {self.old}'s registry cannot be read "
            f"({self.unreadable})"
        ]
        if not self.from_event_log:
            lines.append(f"{self.old}'s event log cannot be read either: what it held is unknown")
        elif self.held:
            lines.append(f"from {self.old}'s event log, the pushes {self.new} never read:")
            lines += self._tag_lines()
        else:
            lines.append(f"{self.old}'s event log names no push that {self.new} did not read")
        lines.append(
            "a push whose event never reached the log is not listed: once "
            f"{self.old} is back (`invoke geo.setup` starts it fenced), "
            f"`invoke geo.reconcile --node {self.old}` lists every tag it holds that "
            f"{self.new} lacks"
        )
        return lines + (self._after_lines() if self.held else [])

    def _tag_lines(self) -> list[str]:
        return [f"  may be lost: {held.line(self.new)}" for held in self.held]

    def _after_lines(self) -> list[str]:
        """Where those tags are after the promotion, and what the user can do about them."""
        lines = []
        if self.others:
            verbs = ("replicates", "drops") if len(self.others) == 1 else ("replicate", "drop")
            lines.append(
                f"{', '.join(self.others)} now {verbs[0]} from {self.new} and {verbs[1]} what "
                f"it lacks: after the promotion each tag above exists only on {self.old}"
            )
        lines.append(
            f"{self.old} is fenced and keeps them: pull one from it and push it to "
            f"{self.new} to keep it; `invoke geo.reconcile --node {self.old}` lists them, "
            "`--yes` drops them"
        )
        return lines


def unread_events(project: Project, cfg: Settings, old: str, new: str) -> list[Held] | None:
    """The pushes in `old`'s event log after the last event `new` read (both SQLite files
    are there even when the old primary's service is dead: on this machine, or in volumes on
    the nodes' engines, copied here); None when unreadable."""
    with tempfile.TemporaryDirectory(prefix="gdk-geo-loss-") as copies:
        place = Placement(project, cfg)
        log_file = place.node_file(old, EVENT_LOG, Path(copies) / "old")
        tracking_file = place.node_file(new, TRACKING_DB, Path(copies) / "new")
        if log_file is None or tracking_file is None:
            return None
        return _unread(log_file, tracking_file, old, new)


def _unread(log_file: Path, tracking_file: Path, old: str, new: str) -> list[Held] | None:
    """The pushes in event log `log_file` after the last event `tracking_file` read."""
    from gdk_geo.primary.eventlog import EventLog
    from gdk_geo.secondary.tracking import TrackingDB

    try:
        tracking = TrackingDB(tracking_file)
        cursor, cursor_log = tracking.cursor(), tracking.cursor_log()
        tracking.close()
        log = EventLog(log_file)
        events, log_id = log.after(cursor, EVENTS_READ_AT_MOST), log.identity
        log.close()
    except (GdkGeoError, OSError):
        return None
    if cursor_log is not None and cursor_log != log_id:
        return None  # `new` last read another log: its cursor says nothing of this one
    why = f"pushed to {old} after the last event {new} read"
    return [
        Held(e.repository, e.tag or "", e.digest or "", why=why)
        for e in events
        if e.action == "updated" and e.tag
    ]
