"""Faults on the primary side: its Geo service killed, its registry restarted or gone.

What must hold in each: every image pushed to the primary ends up on the secondary with the
same digest, what the secondary already has stays pullable, and `invoke geo.verify` ends
clean. Events make replication fast; these scenarios take them away and show that the
registry's retries and the worker's backfill make it complete anyway.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import Callable

import httpx
import pytest
from faults_kit import DEADLINE, Scratch, kill

from gdk_geo.registry.reference import ACCEPT_MANIFESTS
from gdk_geo.runtime import services
from testkit.net import wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_primary_service_sigkilled_during_twenty_pushes_loses_nothing(nodes_up: Scratch) -> None:
    """The registry holds notifications it could not deliver and retries them forever, so
    once the service is back every push is in the event log, not just the backfilled ones."""
    images: dict[tuple[str, str], str] = {}
    killed = None
    for i in range(20):
        repo = f"killed-service/app-{i:02d}"
        images[(repo, "v1")] = nodes_up.push(repo, "v1")
        if i == 4:
            killed = nodes_up.service_pid("primary")
            kill(killed)
    assert killed is not None

    nodes_up.must("geo.setup")  # starts what is down, leaves the registry (and its queue) alone
    assert nodes_up.service_pid("primary") != killed

    nodes_up.wait_replicated(images)
    nodes_up.wait_synced([repo for repo, _ in images])
    wait_for(
        "every push in the primary's event log (the registry retried them)",
        lambda: {repo for repo, _ in images} <= {e["repository"] for e in nodes_up.events()},
        nodes_up.log_tail,
        timeout=DEADLINE,
    )
    nodes_up.verify_clean()


def test_notifications_dropped_by_a_registry_restart_are_repaired_by_backfill(
    nodes_up: Scratch,
) -> None:
    """Distribution keeps undelivered notifications in memory only: a registry restart while
    the service is down drops them. The worker's backfill must notice the new repositories."""
    services.stop(nodes_up.node("primary"))  # the registry now queues what it cannot deliver
    images = {(f"dropped/app-{i}", "v1"): nodes_up.push(f"dropped/app-{i}", "v1") for i in range(3)}

    nodes_up.must("geo.restart", "--node", "primary")  # the registry restarts: queue gone

    nodes_up.wait_replicated(images)
    nodes_up.wait_synced([repo for repo, _ in images])
    logged = {event["repository"] for event in nodes_up.events()}
    assert not logged & {repo for repo, _ in images}, "the notifications really were dropped"
    nodes_up.verify_clean()


OUTAGE_SECONDS = 30.0  # at least: the outage lasts until the backoff has been seen to grow

Observations = dict[str, dict[int, tuple[float, float]]]


def _failed_once(observed: dict[int, tuple[float, float]]) -> bool:
    return bool(observed)


def _backed_off(observed: dict[int, tuple[float, float]]) -> bool:
    """Enough failures of one repository to judge its backoff: two retry_counts at least,
    the last after its third failure."""
    return len(observed) >= 2 and max(observed) >= 3


def _backoff_observations(
    nodes_up: Scratch,
    seen: Observations,
    enough: Callable[[dict[int, tuple[float, float]]], bool],
    not_before: float = 0.0,
) -> None:
    """Watch the tracking rows of the repositories in `seen` and add, per retry_count seen
    while failed, (updated_at, retry_at) as the worker recorded them; until `enough` holds
    for every repository and `not_before` (monotonic) has passed.

    How many failures a span of time holds depends on how fast the machine is (each failed
    sync waits for its own retries to give up), so the watch ends on what the rows show,
    not on the clock; `DEADLINE` only bounds a worker that never fails. Only the worker's
    own timestamps are kept, never this process's clock: how late an answer arrives (a
    busy machine) must not change what the rows say."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < not_before or not all(enough(found) for found in seen.values()):
        assert time.monotonic() < deadline, f"too few failures recorded: {seen}\n" + (
            nodes_up.log_tail()
        )
        with contextlib.suppress(httpx.HTTPError):
            rows = nodes_up.rows()
            for repo, found in seen.items():
                row = rows.get(repo)
                if row and row["state"] == "failed":
                    assert row["last_sync_failure"], row
                    found.setdefault(row["retry_count"], (row["updated_at"], row["retry_at"]))
        time.sleep(0.2)


def _pull(nodes_up: Scratch, node: str, repo: str, tag: str) -> str:
    """Pull `repo:tag` from `node` the way a client does: manifest, then every blob, each
    checked against its digest. Returns the manifest digest."""
    url, tls = nodes_up.registry_url(node), nodes_up.tls()
    with httpx.Client(base_url=url, verify=tls, timeout=30, auth=nodes_up.login(node)) as client:
        response = client.get(f"/v2/{repo}/manifests/{tag}", headers={"Accept": ACCEPT_MANIFESTS})
        response.raise_for_status()
        manifest = response.json()
        for blob in [manifest["config"], *manifest["layers"]]:
            data = client.get(f"/v2/{repo}/blobs/{blob['digest']}", follow_redirects=True)
            data.raise_for_status()
            assert f"sha256:{hashlib.sha256(data.content).hexdigest()}" == blob["digest"]
        return f"sha256:{hashlib.sha256(response.content).hexdigest()}"


def test_primary_unreachable_for_thirty_seconds(nodes_up: Scratch) -> None:
    """While the primary registry is gone the secondary keeps serving what it has, records
    each failed sync with a growing backoff, and catches up once the primary is back."""
    kept = {(f"outage/kept-{i}", "v1"): nodes_up.push(f"outage/kept-{i}", "v1") for i in range(2)}
    nodes_up.wait_replicated(kept)

    # Stop the worker so the next pushes reach it as events only once the primary is gone.
    services.stop(nodes_up.node("secondary"))
    waiting = {(f"outage/new-{i}", "v1"): nodes_up.push(f"outage/new-{i}", "v1") for i in range(3)}
    repos = [repo for repo, _ in waiting]
    wait_for(
        "the pushes in the primary's event log",
        lambda: set(repos) <= {event["repository"] for event in nodes_up.events()},
        nodes_up.log_tail,
        timeout=DEADLINE,
    )
    primary = nodes_up.container("primary")
    primary.stop(timeout=10)
    try:
        gone_at = time.monotonic()
        nodes_up.must("geo.restart", "--node", "secondary")
        seen: Observations = {repo: {} for repo in repos}
        _backoff_observations(nodes_up, seen, _failed_once)
        for (repo, tag), digest in kept.items():  # still pullable from the secondary
            assert _pull(nodes_up, "secondary", repo, tag) == digest
        _backoff_observations(nodes_up, seen, _backed_off, not_before=gone_at + OUTAGE_SECONDS)
    finally:
        primary.start()

    for repo in repos:
        observed = seen[repo]
        assert _backed_off(observed), (repo, observed, nodes_up.log_tail())
        counts = sorted(observed)
        gaps = [observed[count][1] - observed[count][0] for count in counts]
        assert gaps == sorted(gaps), f"backoff must grow with retry_count: {observed}"
        assert all(gap > 0 for gap in gaps), observed
        for before, after in itertools.pairwise(counts):  # never retried before retry_at
            assert observed[after][0] >= observed[before][1], (before, after, observed)
    nodes_up.wait_replicated(waiting)
    nodes_up.wait_synced(repos)
    rows = nodes_up.rows()
    assert all((rows[r]["retry_count"], rows[r]["last_sync_failure"]) == (0, None) for r in repos)
    nodes_up.verify_clean()
