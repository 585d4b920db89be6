"""Unplanned failover drills on real nodes (issue 25): the loss report misses no push the
old primary acknowledged, and `geo.reconcile --yes` finishes at once.

Pushes go through skopeo, as a user's would: a push counts as acknowledged when skopeo
exits 0. The promotion runs in this process so that each of its steps can wait for the
push loop to finish one more push first (an event, not a sleep): a push then lands on the
old primary after the promotion began, which is the push a report read too early misses.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from failover_kit import (
    EVENTS_ONLY,
    REPO,
    SetUp,
    digest_on,
    push_tag,
    pushed_before,
    three_nodes,
)
from helpers import invoke, named_nodes_yml, unique_prefix
from registry_login import creds_argument

from gdk_geo.ops import promote, unplanned
from gdk_geo.project import Project, roles
from gdk_geo.runtime import services
from gdk_geo.settings import Settings
from testkit.images import make_image, write_oci_layout

PUSHES = 20
STEP = re.compile(r"\d/\d ")  # a promotion step's message: "1/3 fencing dc1: ..."


@dataclass
class PushLoop:
    """Pushes img1..imgN to one registry with skopeo, one after the other, in a thread;
    records each push's digest and whether skopeo acknowledged it (exit 0)."""

    project: Project
    address: str  # host:port of the registry pushed to
    layouts: Path
    acknowledged: dict[str, str] = field(default_factory=dict)  # tag → digest
    refused: list[str] = field(default_factory=list)
    attempts: int = 0
    ended: bool = False
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def run(self) -> None:
        try:
            for n in range(1, PUSHES + 1):
                ok, tag, digest = self._push(f"img{n}")
                with self._changed:
                    if ok:
                        self.acknowledged[tag] = digest
                    else:
                        self.refused.append(tag)
                    self.attempts += 1
                    self._changed.notify_all()
        finally:
            with self._changed:
                self.ended = True
                self._changed.notify_all()

    def _push(self, tag: str) -> tuple[bool, str, str]:
        image = make_image([os.urandom(64)])
        layout = write_oci_layout(self.layouts / tag, tag, image)
        cfg = self.project.load()
        done = subprocess.run(
            [
                "skopeo", "--insecure-policy", "copy", "--quiet", "--preserve-digests",
                f"--dest-cert-dir={self.project.trust_dir(cfg)}",
                "--dest-creds", creds_argument(self.project),
                f"oci:{layout}:{tag}", f"docker://{self.address}/{REPO}:{tag}",
            ],
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        return done.returncode == 0, tag, image.digest

    def wait_for_attempts(self, count: int) -> None:
        """Until `count` pushes have finished (acknowledged or not), or the loop ended."""
        with self._changed:
            self._changed.wait_for(lambda: self.attempts >= count or self.ended, timeout=120)

    def one_more(self) -> None:
        """Until the push in flight now (or the next one) has finished."""
        self.wait_for_attempts(self.attempts + 1)


def _on(project: Project, cfg: Settings, node: str, tags: dict[str, str]) -> dict[str, str]:
    """The tags of `tags` that `node` has at the same digest."""
    return {tag: d for tag, d in tags.items() if digest_on(project, cfg, node, tag) == d}


@pytest.mark.docker
def test_a_forced_promotion_reports_every_push_the_old_primary_acknowledged(
    nodes_up: SetUp, tmp_path: Path
) -> None:
    project = nodes_up(gdk_yml=three_nodes())
    cfg = project.load()
    services.stop(project.node(cfg, "dc3"))  # dc3 lags: its worker syncs nothing from now
    loop = PushLoop(project, cfg.node("dc1").registry_address, tmp_path / "layouts")
    pushing = threading.Thread(target=loop.run, daemon=True)
    pushing.start()
    loop.wait_for_attempts(3)  # mid-loop

    def each_step(message: str) -> None:
        if STEP.match(message):  # one more push finishes before the step goes on
            loop.one_more()

    done = unplanned.force_promote(project, "dc3", say=each_step)
    pushing.join(timeout=300)
    assert loop.ended, "the push loop did not end"
    assert len(loop.acknowledged) >= 4, loop  # one at least after the promotion began
    assert loop.refused, "the fenced old primary took every push"
    report = done.lost
    assert report is not None and report.complete, report
    reported = {held.tag: held.digest for held in report.held}
    cfg = project.load()
    on_dc3 = _on(project, cfg, "dc3", loop.acknowledged)
    missing = {
        t: d for t, d in loop.acknowledged.items() if t not in on_dc3 and reported.get(t) != d
    }
    assert not missing, f"acknowledged, not on dc3 and not reported: {missing}\n{report.lines()}"
    assert reported, "dc3's worker was stopped: it lacks what dc1 took since"
    text = "\n".join(report.lines())
    assert "dc2 now replicates from dc3 and drops what it lacks" in text, text
    assert "exists only on dc1" in text, text

    # The report's word on dc2: once it syncs from dc3 (now, not at its next pass), every
    # reported tag is on the fenced dc1 alone, which keeps it until reconcile.
    synced = invoke(project.root, "geo.sync", "--all", "--node", "dc2")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    reported_acknowledged = {t: d for t, d in reported.items() if t in loop.acknowledged}
    assert _on(project, cfg, "dc2", reported_acknowledged) == {}
    assert _on(project, cfg, "dc1", reported_acknowledged) == reported_acknowledged


@pytest.mark.docker
def test_reconcile_drops_the_held_tags_at_once_and_without_a_traceback(nodes_up: SetUp) -> None:
    """Three nodes. The old primary dc2 was a secondary before a planned promotion, so its tracking
    database knows group/app as synced and checked: backfill does not queue it again, and
    verification is an hour away (EVENTS_ONLY). Only the pass reconcile asks its worker for
    drops the held tag."""
    project = nodes_up(
        gdk_yml=named_nodes_yml(("dc1", "dc2", "dc3"), unique_prefix("r"), EVENTS_ONLY)
    )
    tags = pushed_before(project)
    promote.promote(project, "dc2", timeout=60, say=lambda _m: None)
    cfg = project.load()
    services.stop(project.node(cfg, "dc1"))  # dc1 lags from here
    held = push_tag(project, cfg, "held")  # to dc2, the primary; dc1 never gets it

    forced = invoke(project.root, "geo.promote", "--node", "dc1", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    assert f"may be lost: {REPO}:held {held} (absent on dc1)" in forced.stdout, forced.stdout
    back = invoke(project.root, "geo.setup")  # whatever brings dc2 back keeps it fenced
    assert back.returncode == 0, back.stdout + back.stderr
    assert digest_on(project, cfg, "dc2", "held") == held

    dropped = invoke(project.root, "geo.reconcile", "--node", "dc2", "--yes")
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert "Traceback" not in dropped.stderr, dropped.stderr
    assert "dc2 is a read-write secondary of dc1 again; 1 tags it held are dropped" in (
        dropped.stdout
    )
    assert digest_on(project, cfg, "dc2", "held") is None  # gone when reconcile returns
    assert digest_on(project, cfg, "dc2", "before") == tags["before"]
    assert "dc2" not in roles.read(project.data_dir(cfg)).fenced
