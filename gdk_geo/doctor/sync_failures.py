"""Failed syncs as `geo.check` reports them: which repositories, why, and what fixes it.

The worker records each repository's last failure. A repository counts as failing from
its first failure until a sync succeeds, also while it is being retried, so a check run
between two retries does not show a green "replication keeps up". The fix follows from
the failure: a registry that cannot be reached is started first, then everything is
synced at once.
"""

from __future__ import annotations

from collections.abc import Sequence

from gdk_geo.secondary.snapshot import RepositoryStatus
from gdk_geo.settings import Settings

SHOWN = 3  # repositories named in the ✗; the status page lists them all


def failing(rows: Sequence[RepositoryStatus]) -> list[RepositoryStatus]:
    """Rows whose last recorded sync did not succeed (failed, or being retried)."""
    return [row for row in rows if row.state == "failed" or row.last_sync_failure]


def describe(rows: Sequence[RepositoryStatus], summary: str, status_page: str) -> str:
    """The lines under the ✗: how many, then the first few with their failure."""
    shown = rows[:SHOWN]
    noun = "repository" if len(rows) == 1 else "repositories"
    lines = [f"{len(rows)} {noun} whose last sync failed ({summary}):"]
    lines += [f"{row.repository}: {row.last_sync_failure}" for row in shown]
    if len(rows) > len(shown):
        lines.append(f"… and {len(rows) - len(shown)} more ({status_page} lists them)")
    return "\n".join(lines)


def repair(reason: str, cfg: Settings) -> str:
    """The fix for a recorded failure: start the registry it could not reach, then sync."""
    sync = "then `invoke geo.sync --all` (retries every repository now)"
    for node in cfg.nodes:
        if f":{node.registry_port}" in reason:
            return f"`invoke geo.setup` (starts the {node.name} registry if it is down), {sync}"
    return f"`invoke geo.logs --node secondary` shows the whole error; {sync}"
