"""What syncs did: one repository's result, the totals of a process's syncs, and the one
way a failure is written down."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_FAILURE_TEXT = 1000  # a registry's error body can be a page of HTML


def failure_line(text: str) -> str:
    """`text` as one line of at most `MAX_FAILURE_TEXT` characters, for a tracking row.

    Sync failures (`last_sync_failure`) and verification failures are shown side by side
    on the admin page and in `geo.check`, so both are folded and clipped alike.
    """
    text = " ".join(text.split())
    return text if len(text) <= MAX_FAILURE_TEXT else text[: MAX_FAILURE_TEXT - 3] + "..."


@dataclass
class RepositorySyncResult:
    """What one sync did to one repository; `ok` only when every tag made it.

    `stale_tags` are tags gone from the primary that are still on the secondary because
    removing them would have removed a kept tag too (see `gdk_geo.secondary.tag_removal`);
    they keep the repository from being `ok`, since the two sides differ.
    """

    repository: str
    ok: bool = False
    synced_tags: list[str] = field(default_factory=list)
    skipped_tags: list[str] = field(default_factory=list)
    failed_tags: dict[str, str] = field(default_factory=dict)
    deleted_tags: list[str] = field(default_factory=list)
    stale_tags: dict[str, str] = field(default_factory=dict)
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    repository_deleted: bool = False
    error: str | None = None

    def finish(self) -> RepositorySyncResult:
        """Settle `ok` from the rest (called once, at the end of a run)."""
        self.ok = self.error is None and not self.failed_tags and not self.stale_tags
        return self


@dataclass
class Totals:
    """What the syncs of this process did, for /-/metrics and the status page."""

    syncs: int = 0
    sync_failures: int = 0
    blobs_copied: int = 0
    blobs_mounted: int = 0
    blobs_present: int = 0
    bytes_copied: int = 0
    tags_deleted: int = 0
    verification_mismatches: int = 0

    def add(self, result: RepositorySyncResult) -> None:
        self.syncs += 1
        self.sync_failures += 0 if result.ok else 1
        self.blobs_copied += result.blobs_copied
        self.blobs_mounted += result.blobs_mounted
        self.blobs_present += result.blobs_present
        self.bytes_copied += result.bytes_copied
        self.tags_deleted += len(result.deleted_tags)
