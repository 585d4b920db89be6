"""Repository sync: make one repository on the secondary registry match the primary.

This is GitLab's `Geo::ContainerRepositorySync`, minus its defects:

- a failed listing of the primary is an error, never "no tags" (GitLab then deleted every
  secondary tag); listings follow pagination;
- tags whose digests already match are skipped after a concurrent HEAD on both sides, so a
  no-op resync costs two listings and one HEAD per tag and side;
- a tag announced by a push event but not yet listed is retried shortly, not concluded;
- multi-arch tags work: children are pushed (by digest) before their index, blobs before
  any manifest, so the secondary never shows a manifest with missing content;
- blobs the secondary already holds in another repository are mounted, not copied;
  identical copies in flight collapse into one (`gdk_geo.secondary.blob_placement`);
- a tag removed on the primary never takes another tag down with it
  (`gdk_geo.secondary.tag_removal`);
- a repository is `ok` only when every tag is.

Everything talks to registries through `RegistryClient`; this module owns the decisions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from gdk_geo.registry.client import RegistryClient, gather_all
from gdk_geo.registry.errors import ManifestNotFound, RegistryError, RepositoryNotFound
from gdk_geo.registry.manifest import Manifest, ManifestRef, references
from gdk_geo.registry.reference import is_tag
from gdk_geo.secondary.blob_locations import BlobLocations
from gdk_geo.secondary.blob_placement import BlobPlacement, once
from gdk_geo.secondary.referrers import referrer_digests
from gdk_geo.secondary.results import RepositorySyncResult
from gdk_geo.secondary.tag_removal import TAG_ERRORS, remove_tags

A = TypeVar("A")
B = TypeVar("B")


@dataclass(frozen=True)
class SyncOptions:
    """How hard one repository's sync pushes on the registries, and how long it waits for a
    tag a push event named. The worker makes one from its settings for every sync."""

    max_concurrent_blobs: int = 4
    """Blobs mounted or copied at once."""
    max_concurrent_tags: int = 4
    """Tags fetched and pushed at once."""
    max_concurrent_heads: int = 8
    """HEAD requests at once per registry, comparing tags."""
    hint_retry_delays: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    """Pauses before looking again for a hinted tag the primary does not list yet."""
    hinted_head_retry_delays: tuple[float, ...] = (0.02, 0.05)
    """Pauses before the first lookup of a hinted tag (a GET by tag) is tried again.
    Distribution sends a push event before it links the tag, so that lookup can be a 404 for
    a few milliseconds; a short wait then beats falling back to a pass of every tag."""


DEFAULT_OPTIONS = SyncOptions()


class RepositorySync:
    """One run of one repository: holds the clients, the bounds and the result being built."""

    def __init__(
        self,
        source: RegistryClient,
        target: RegistryClient,
        repository: str,
        *,
        blob_locations: BlobLocations | None = None,
        options: SyncOptions = DEFAULT_OPTIONS,
    ) -> None:
        self.source = source
        self.target = target
        self.repository = repository
        self.locations = blob_locations if blob_locations is not None else BlobLocations()
        self.result = RepositorySyncResult(repository)
        self._blobs = BlobPlacement(
            source,
            target,
            repository,
            self.locations,
            self.result,
            max_concurrent_blobs=options.max_concurrent_blobs,
        )
        self._tag_limit = asyncio.Semaphore(options.max_concurrent_tags)
        self._max_heads = options.max_concurrent_heads
        self._hint_retry_delays = options.hint_retry_delays
        self._hinted_head_retry_delays = options.hinted_head_retry_delays
        # Work done once per run however many tags share it (tasks, so sharers can wait).
        self._manifests: dict[str, asyncio.Future[Manifest]] = {}
        self._children: dict[str, asyncio.Task[None]] = {}
        self._pushed: dict[str, str] = {}  # tag -> digest pushed this run
        self._already_equal: set[str] = set()  # hinted tags found identical on both sides

    async def run(
        self, tags_hint: Collection[str] = (), *, hinted_only: bool = False
    ) -> RepositorySyncResult:
        """Sync every tag, then remove the tags the primary no longer has.

        With `hinted_only`, stop after the hinted tags when every one of them is settled:
        the caller knows nothing else changed (a push event on a repository that was in
        sync). Anything unexpected (a hinted tag missing, a failure) falls back to the full
        pass.
        """
        result = self.result
        hints = {tag for tag in tags_hint if is_tag(tag)}  # an event can't name an invalid tag
        if hints:
            await self._sync_hinted_first(hints)
            if hinted_only and self._pushed.keys() | self._already_equal >= hints:
                return result.finish()
        listed = await self._on_both_sides(self._listing(self.source), self._listing(self.target))
        if listed is None:
            return result.finish()
        primary_listed, secondary_listed = listed
        compared = await self._on_both_sides(
            self._primary_tags(primary_listed, hints, set(secondary_listed)),
            self.target.head_manifests(
                self.repository, secondary_listed, concurrency=self._max_heads
            ),
        )
        if compared is None:
            return result.finish()
        (primary, unsettled), secondary = compared
        result.failed_tags.update(unsettled)
        result.repository_deleted = not primary and not unsettled

        stale = [
            tag for tag, ref in primary.items() if ref is None or _differs(ref, secondary.get(tag))
        ]
        result.skipped_tags = sorted(set(primary) - set(stale) - set(self._pushed))
        await gather_all(self._sync_tag(tag, primary[tag]) for tag in sorted(stale))
        await self._sync_referrers(primary, primary_listed)

        gone = [tag for tag in secondary if tag not in primary and tag not in unsettled]
        kept = self._kept_digests([*primary, *unsettled], secondary)
        await remove_tags(self.target, self.repository, gone, secondary, kept, result)
        if result.repository_deleted and not result.stale_tags:
            self.locations.forget_repository(self.repository)
        return result.finish()

    async def _sync_hinted_first(self, hints: set[str]) -> None:
        """Push the tags a push event named before reconciling the whole repository.

        The event says what changed, so the new tag reaches the secondary after a handful of
        requests instead of after a HEAD of every tag on both sides; the full pass that
        follows still reconciles everything (and retries anything that failed here). A
        hinted tag the primary does not show yet is looked up again after short pauses
        first: the event can come a few milliseconds before the tag is linked.

        The primary's hinted manifests are fetched by tag, not HEADed (`_get_by_tags`): a
        HEAD then a GET by digest were two round trips to the primary where one does, and
        over a WAN each is the link's round trip (bench/RESULTS.md, scenario 11: 50 ms of a
        push's 210 at 50 ms RTT). A hinted tag is nearly always new, so the body is wanted;
        when it turns out equal, a manifest of a few KiB was read for nothing.
        """
        try:
            primary, secondary = await gather_all(
                [
                    self._get_by_tags(hints),
                    self.target.head_manifests(self.repository, hints, concurrency=self._max_heads),
                ]
            )
            await self._wait_for_hints(
                primary, hints, self._hinted_head_retry_delays, self._get_by_tags
            )
        except RegistryError:
            return  # the full pass reports it
        changed = [tag for tag, ref in primary.items() if _differs(ref, secondary.get(tag))]
        self._already_equal = set(primary) - set(changed)
        await gather_all(self._sync_tag(tag, primary[tag]) for tag in sorted(changed))
        if self.result.failed_tags:
            self._already_equal = set()  # something went wrong: let the full pass settle it

    def _kept_digests(
        self, tags: Iterable[str], secondary: dict[str, ManifestRef]
    ) -> dict[str, str]:
        """tag -> digest on the target after this run, for the tags that stay there."""
        kept = {}
        for tag in tags:
            digest = self._pushed.get(tag) or (secondary[tag].digest if tag in secondary else None)
            if digest:
                kept[tag] = digest
        return kept

    # -- listing ---------------------------------------------------------------------------

    async def _on_both_sides(
        self, primary_side: Awaitable[A], secondary_side: Awaitable[B]
    ) -> tuple[A, B] | None:
        """Run one step on both registries at once; None (and the run's error) if either failed.

        A listing that fails is an error, never an empty list: nothing is deleted then.
        """
        outcomes = await asyncio.gather(primary_side, secondary_side, return_exceptions=True)
        for side, outcome in zip(("primary", "secondary"), outcomes, strict=True):
            if isinstance(outcome, RegistryError):
                self.result.error = f"listing the {side} failed, nothing deleted: {outcome}"
                return None
            if isinstance(outcome, BaseException):
                raise outcome
        return outcomes[0], outcomes[1]  # type: ignore[return-value]

    async def _listing(self, client: RegistryClient) -> list[str]:
        """Every tag `client` lists; an unknown repository has none."""
        try:
            return await client.list_tags(self.repository)
        except RepositoryNotFound:
            if client is self.target:
                self._blobs.target_is_new = True  # it holds no blobs
            return []

    async def _primary_tags(
        self, listed: list[str], hints: set[str], on_target: set[str]
    ) -> tuple[dict[str, ManifestRef | None], dict[str, str]]:
        """The primary's tags, and the tags we could not settle (tag -> why).

        Only tags the secondary also lists are HEADed, to compare digests; a tag the
        secondary lacks maps to None and is fetched by tag, its digest coming with the GET
        (bench/RESULTS.md counts the requests this saves).

        A push event can arrive before its tag is listed. A hinted tag that is missing is
        looked up directly (HEAD by tag), a few times with short pauses; if it still isn't
        there we don't conclude it is gone: it is reported unsettled (the sync is not ok and
        will be retried) and it is not deleted on the secondary. The same goes for a listed
        tag whose manifest vanished between listing and HEAD.
        """
        compared = (set(listed) & on_target) | hints
        found: dict[str, ManifestRef | None] = dict(
            await self.source.head_manifests(self.repository, compared, concurrency=self._max_heads)
        )
        missing = await self._wait_for_hints(found, hints, self._hint_retry_delays)
        unsettled = {tag: "announced by a push event but not on the primary yet" for tag in missing}
        for tag in (compared - hints) - found.keys():
            unsettled[tag] = "listed on the primary but its manifest is gone (deleted meanwhile?)"
        for tag in set(listed) - compared:
            found[tag] = None
        return found, unsettled

    async def _wait_for_hints(
        self,
        found: dict[str, Any],
        hints: set[str],
        delays: Sequence[float],
        look: Callable[[set[str]], Awaitable[dict[str, ManifestRef]]] | None = None,
    ) -> set[str]:
        """Look the hinted tags `found` lacks up again after each pause in `delays` (`look`,
        by default a HEAD of each on the primary), adding to `found` what shows up; return
        the hinted tags that never did. A push event can come before its tag is linked, and
        before the tag is listed."""
        missing = hints - found.keys()
        for delay in delays:
            if not missing:
                break
            await asyncio.sleep(delay)
            if look is None:
                found.update(await self.source.head_manifests(self.repository, missing))
            else:
                found.update(await look(missing))
            missing -= found.keys()
        return missing

    async def _get_by_tags(self, tags: Iterable[str]) -> dict[str, ManifestRef]:
        """The primary's manifests of `tags`, fetched by tag (at most `max_concurrent_heads`
        at once) and remembered by digest, so `_sync_tag` pushes them without another
        request; a tag the primary lacks is left out, as a HEAD would leave it."""
        limit = asyncio.Semaphore(self._max_heads)

        async def one(tag: str) -> tuple[str, ManifestRef | None]:
            async with limit:
                try:
                    manifest = await self._fetch_tag(tag)
                except (ManifestNotFound, RepositoryNotFound):
                    return tag, None
            return tag, ManifestRef(manifest.digest, manifest.media_type, len(manifest.raw))

        pairs = await gather_all(one(tag) for tag in tags)
        return {tag: ref for tag, ref in pairs if ref is not None}

    async def _sync_referrers(
        self, primary: dict[str, ManifestRef | None], listed: Collection[str]
    ) -> None:
        """Push, by digest, what refers to each tagged manifest through `subject`, and what
        refers to those (`gdk_geo.secondary.referrers`): no tag names them, so the tag pass
        never copies them. Each goes like an index child: content first, skipped when the
        secondary has it. Against a registry with neither the API nor a fallback tag this
        costs one request per client."""
        subjects = [
            self._pushed.get(tag) or (ref.digest if ref else "") for tag, ref in primary.items()
        ]
        todo = sorted({digest for digest in subjects if digest})
        seen = set(todo)
        while todo:
            subject = todo.pop()
            try:
                found = await referrer_digests(self.source, self.repository, subject, listed)
                await gather_all(self._ensure_child(digest) for digest in found)
            except TAG_ERRORS as exc:
                reason = str(exc) or exc.__class__.__name__
                self.result.failed_tags[f"referrers of {subject}"] = reason
                continue
            todo += [digest for digest in found if digest not in seen]
            seen.update(found)

    # -- tags and manifests ----------------------------------------------------------------

    async def _sync_tag(self, tag: str, ref: ManifestRef | None) -> None:
        """Copy one tag: its content first, then its manifest, byte for byte, by tag.

        A compared tag's manifest is fetched by the digest the HEAD reported, so what we
        push is what we compared; many tags on one digest (common for release aliases) cost
        one GET. A tag the secondary lacks (`ref` None) is fetched by tag.
        """
        async with self._tag_limit:
            try:
                manifest = await (self._fetch(ref.digest) if ref else self._fetch_tag(tag))
                await self._ensure_content(manifest)
                await self.target.put_manifest(
                    self.repository, tag, manifest.raw, manifest.media_type
                )
            except TAG_ERRORS as exc:
                self.result.failed_tags[tag] = str(exc) or exc.__class__.__name__
                return
            self.result.failed_tags.pop(tag, None)  # an earlier attempt in this run failed
            if tag not in self._pushed:
                self.result.synced_tags.append(tag)
            self._pushed[tag] = manifest.digest

    def _fetch(self, digest: str) -> Awaitable[Manifest]:
        """The primary's manifest `digest`, fetched once per run."""
        return once(
            self._manifests, digest, lambda: self.source.get_manifest(self.repository, digest)
        )

    async def _fetch_tag(self, tag: str) -> Manifest:
        """The primary's manifest for `tag`, then remembered by digest for whatever shares it."""
        manifest = await self.source.get_manifest(self.repository, tag)
        if manifest.digest not in self._manifests:
            done = asyncio.get_running_loop().create_future()
            done.set_result(manifest)
            self._manifests[manifest.digest] = done
        return manifest

    async def _ensure_content(self, manifest: Manifest) -> None:
        """Make everything `manifest` points at present on the target (children, blobs)."""
        children, blobs = references(manifest)
        await gather_all(self._ensure_child(child.digest) for child in children)
        await gather_all(self._blobs.ensure(blob) for blob in blobs)

    def _ensure_child(self, digest: str) -> Awaitable[None]:
        """Push one child of an index by digest, once per run however many tags share it."""
        return once(self._children, digest, lambda: self._push_child(digest))

    async def _push_child(self, digest: str) -> None:
        if await self.target.head_manifest(self.repository, digest) is not None:
            return
        manifest = await self._fetch(digest)
        await self._ensure_content(manifest)
        await self.target.put_manifest(self.repository, digest, manifest.raw, manifest.media_type)


def _differs(primary: ManifestRef, secondary: ManifestRef | None) -> bool:
    return secondary is None or secondary.digest != primary.digest


async def sync_repository(
    source: RegistryClient,
    target: RegistryClient,
    repository: str,
    *,
    tags_hint: Collection[str] = (),
    hinted_only: bool = False,
    blob_locations: BlobLocations | None = None,
    options: SyncOptions = DEFAULT_OPTIONS,
) -> RepositorySyncResult:
    """Make `repository` on `target` (the secondary) match `source` (the primary).

    The tags a push event named (`tags_hint`) go first; with `hinted_only` (the repository
    was in sync before that push) the run ends there when they all settle. `blob_locations`
    is the target's, shared by every sync in the process: it is what lets a blob be mounted
    from another repository, and identical copies collapse. A repository the primary doesn't
    know, or that has no tags there, loses all its tags on the target.

    Registry failures never raise: they end up in the result (`error` for the repository,
    `failed_tags`/`stale_tags` per tag). Only bugs raise.

    Run at most one sync per repository at a time (the worker's tracking DB claims a
    repository before syncing it): the decision to delete by digest relies on nobody else
    writing the repository on the target meanwhile.
    """
    run = RepositorySync(source, target, repository, blob_locations=blob_locations, options=options)
    return await run.run(tags_hint, hinted_only=hinted_only)
