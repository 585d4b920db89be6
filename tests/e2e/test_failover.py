"""Failover drills on real nodes: planned promotions there and back again (issue 16).

A scratch project is set up with `geo.setup` (own container prefix, free ports); images
are pushed with the Registry API before, during and after each switch, and each is
looked for on every node with a HEAD. Nothing is mocked: the registries are the real
Distribution containers, the services the bundled ones.

Every project comes from the `nodes_up` fixture (conftest.py), whose teardown removes what
it started (`geo.destroy`, then any container still labelled with the project) also when
the test fails, its set-up fails half-way, or the run is interrupted.
"""

from __future__ import annotations

import json
import re
import shlex
import ssl

import httpx
import pytest
from failover_kit import (
    EVENTS_ONLY,
    REPO,
    SetUp,
    ca_file,
    digest_on,
    everywhere,
    push_tag,
    pushed_before,
    refused_push,
    three_nodes,
    worker_totals,
)
from helpers import invoke
from registry_login import RegistryLogin
from ruamel.yaml import YAML

from gdk_geo.doctor import checks, local_checks
from gdk_geo.ops import promote
from gdk_geo.project import roles
from gdk_geo.runtime import containers, services
from testkit.net import wait_for


@pytest.mark.docker
def test_a_planned_round_trip_loses_no_image(nodes_up: SetUp) -> None:
    project = nodes_up("f")
    cfg = project.load()
    tags = pushed_before(project)
    refusals: list[httpx.Response] = []

    def during(message: str) -> None:
        if message.startswith("2/4"):  # the primary is read-only now
            refusals.append(refused_push(project, project.load()))

    done = promote.promote(project, "secondary", timeout=60, say=during)
    # Distribution's own refusal in read-only mode, as `docker push` shows it
    assert refusals and refusals[0].status_code == 405, refusals
    assert "Method not allowed" in refusals[0].text
    assert done.push_address == cfg.node("secondary").registry_address
    assert roles.read(project.data_dir(cfg)).primary == "secondary"
    cfg = project.load()
    assert cfg.primary_name == "secondary"
    tags["after-first"] = push_tag(project, cfg, "after-first")
    everywhere(project, tags)
    assert invoke(project.root, "geo.verify").returncode == 0

    back = invoke(project.root, "geo.promote", "--node", "primary", timeout=300)
    assert back.returncode == 0, back.stdout + back.stderr
    assert f"push to: docker push {cfg.node('primary').registry_address}" in back.stdout
    assert "primary: secondary → primary" in back.stdout
    cfg = project.load()
    assert cfg.primary_name == "primary"
    tags["after-back"] = push_tag(project, cfg, "after-back")
    everywhere(project, tags)
    verified = invoke(project.root, "geo.verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    status = invoke(project.root, "geo.status", "--json")
    assert '"primary": "primary"' in status.stdout, status.stdout


@pytest.mark.docker
def test_a_promote_that_times_out_leaves_the_primary_read_write(nodes_up: SetUp) -> None:
    project = nodes_up("g")
    cfg = project.load()
    secondary = project.node(cfg, "secondary")
    # the secondary cannot catch up: its worker is stopped (and so does not answer)
    services.stop(secondary)
    result = invoke(project.root, "geo.promote", "--node", "secondary", "--timeout", "2s")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "did not catch up within 2s" in result.stderr
    assert "primary is primary and read-write again" in result.stderr
    assert project.load().primary_name == "primary"
    assert not roles.read(project.data_dir(cfg)).promoting
    digest = push_tag(project, project.load(), "still-writable")
    assert digest.startswith("sha256:")


@pytest.mark.docker
def test_three_nodes_the_other_secondary_follows_without_copying_blobs(nodes_up: SetUp) -> None:
    project = nodes_up(gdk_yml=three_nodes())
    cfg = project.load()
    assert cfg.primary_name == "dc1"
    tags = pushed_before(project)
    done = promote.promote(project, "dc2", timeout=60, say=lambda _m: None)
    assert "dc3: now replicates from dc2 (keeps its data)" in done.changes
    cfg = project.load()
    # dc1 and dc3 restarted as secondaries of dc2 and re-verified what they hold:
    # their workers' counters (this process's syncs) show no blob copied again
    for node in ("dc1", "dc3"):
        assert worker_totals(cfg, node)["blobs_copied"] == 0, worker_totals(cfg, node)
    tags["after"] = push_tag(project, cfg, "after")
    everywhere(project, tags)
    for node in ("dc1", "dc3"):
        assert worker_totals(cfg, node)["blobs_copied"] >= 1, worker_totals(cfg, node)


@pytest.mark.docker
def test_after_a_promotion_a_secondary_reads_the_new_primary_log_from_its_start(
    nodes_up: SetUp,
) -> None:
    """The cursor belongs to the log it was read from (issue 16, item 2).

    dc3 sleeps through the promotion: its worker is stopped and its tracking database put
    back as it was before (its cursor at dc1's last event, in dc1's log), as if the node had
    been off while dc2 was promoted. The pushes to dc2 number its own log's events from 1,
    up to past that cursor: read as dc1's ids, every one up to the cursor would be skipped.
    Backfill and verification are an hour apart, so only events can bring the new tags.
    """
    from gdk_geo.secondary.tracking import TrackingDB

    project = nodes_up(gdk_yml=three_nodes(EVENTS_ONLY))
    tags = pushed_before(project)
    cfg = project.load()
    tracking_file = project.node(cfg, "dc3").tracking_db
    before = TrackingDB(tracking_file)
    cursor, cursor_log = before.cursor(), before.cursor_log()
    before.close()
    assert cursor >= 1 and cursor_log, (cursor, cursor_log)

    promote.promote(project, "dc2", timeout=60, say=lambda _m: None)
    cfg = project.load()
    dc3 = project.node(cfg, "dc3")
    services.stop(dc3)
    asleep = TrackingDB(tracking_file)
    asleep.apply_events([], cursor, None, log_id=cursor_log)  # as before the promotion
    asleep.close()
    for n in range(cursor + 1):  # dc2's log: ids 1 .. past dc3's old cursor
        tags[f"new-{n}"] = push_tag(project, cfg, f"new-{n}")

    woke = invoke(project.root, "geo.setup")  # starts what is down: dc3's worker
    assert woke.returncode == 0, woke.stdout + woke.stderr
    everywhere(project, tags)
    log = dc3.service_log.read_text()
    assert "the primary's event log is another one" in log, log[-2000:]
    after = TrackingDB(tracking_file)
    assert after.cursor_log() not in (None, cursor_log)
    assert after.cursor() >= cursor + 1  # every event of dc2's log read, by event
    after.close()


@pytest.mark.docker
def test_every_secondary_is_verified_checked_and_shown(nodes_up: SetUp) -> None:
    """geo.verify, geo.check and geo.status look at each secondary, not the first only."""
    project = nodes_up(gdk_yml=three_nodes())
    tags = pushed_before(project)
    cfg = project.load()
    services.stop(project.node(cfg, "dc3"))  # dc3 misses the next push
    tags["dc2-only"] = push_tag(project, cfg, "dc2-only")
    wait_for("dc2-only on dc2", lambda: digest_on(project, cfg, "dc2", "dc2-only"))

    verified = invoke(project.root, "geo.verify")
    assert verified.returncode == 1, verified.stdout + verified.stderr
    assert "dc2: 1 repositories compared, 0 differ" in verified.stdout, verified.stdout
    assert "dc3: 1 repositories compared, 1 differ" in verified.stdout, verified.stdout
    at = verified.stdout.index("dc3 (secondary of dc1):")
    assert f"missing on the secondary: dc2-only ({tags['dc2-only']})" in verified.stdout[at:]
    only_dc2 = invoke(project.root, "geo.verify", "--node", "dc2", "--json")
    assert only_dc2.returncode == 0, only_dc2.stdout + only_dc2.stderr
    assert '"clean": true' in only_dc2.stdout
    primary = invoke(project.root, "geo.verify", "--node", "dc1")
    assert primary.returncode == 1 and "dc1 is the primary" in primary.stderr, primary.stderr

    checked = invoke(project.root, "geo.check", timeout=180)
    assert checked.returncode == 1, checked.stdout
    lines = checked.stdout.splitlines()
    worker_check = next(c for c in checks.CHECKS if c.name == "worker")
    assert checks.failure_line(worker_check, "dc3") in lines, checked.stdout
    assert f"✓ {worker_check.title} (dc2: " in checked.stdout, checked.stdout
    at = lines.index(checks.failure_line(worker_check, "dc3"))
    fix = next(line for line in lines[at:] if line.startswith("    fix: "))
    assert "`invoke geo.restart --node dc3`" in fix, fix
    lag = next(c for c in checks.CHECKS if c.name == "lag")
    assert any(line.startswith(f"✓ {lag.title} (dc2: ") for line in lines), checked.stdout
    assert f"- {lag.title} (dc3): skipped: needs “{worker_check.title}”" in lines

    status = invoke(project.root, "geo.status", "--json")
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    assert report["nodes"]["dc2"]["replication"]["counts"]["synced"] >= 1, report  # probe too
    assert report["nodes"]["dc3"]["replication"] is None, report
    assert "replication" not in report["nodes"]["dc1"]
    table = invoke(project.root, "geo.status")
    assert "replication to dc2: synced " in table.stdout, table.stdout
    assert "replication to dc3: its Geo worker does not answer" in table.stdout, table.stdout


@pytest.mark.docker
def test_an_unplanned_failover_fences_the_old_primary_until_reconciled(nodes_up: SetUp) -> None:
    project = nodes_up("u")
    cfg = project.load()
    tags = pushed_before(project)
    services.stop(project.node(cfg, "secondary"))  # the next push is not replicated
    unreplicated = push_tag(project, cfg, "unreplicated")
    containers.engine().containers.get(containers.container_name(cfg, "primary")).kill()
    services.stop(project.node(cfg, "primary"))

    forced = invoke(project.root, "geo.promote", "--node", "secondary", "--force")
    assert forced.returncode == 0, forced.stdout + forced.stderr
    # the old registry is dead, its event log names what the secondary never read
    assert f"may be lost: {REPO}:unreplicated {unreplicated} (pushed to primary" in (forced.stdout)
    assert "the report cannot be complete: primary's registry cannot be read" in forced.stdout
    assert "`invoke geo.reconcile --node primary` lists every tag it holds" in forced.stdout
    cfg = project.load()
    assert cfg.primary_name == "secondary"
    tags["after-force"] = push_tag(project, cfg, "after-force")

    back = invoke(project.root, "geo.setup")  # the old primary comes back: fenced
    assert back.returncode == 0, back.stdout + back.stderr
    assert roles.believes_primary(project.node(cfg, "primary").gitlab_yml) is False
    assert local_checks.one_primary(checks.Context(project)).status == "passed"
    old = cfg.node("primary").registry_url
    ca = ssl.create_default_context(cafile=str(ca_file(project, cfg)))
    login = RegistryLogin.of(project)
    refused = httpx.post(f"{old}/v2/{REPO}/blobs/uploads/", verify=ca, auth=login)
    # a secondary's realm grants no push: the registry refuses the pull-only token
    assert refused.status_code == 401, refused.text
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    registry = YAML(typ="safe").load(project.node(cfg, "primary").registry_config.read_text())
    assert registry["storage"]["maintenance"]["readonly"]["enabled"] is True
    assert digest_on(project, cfg, "primary", "unreplicated") == unreplicated  # held

    listed = invoke(project.root, "geo.reconcile", "--node", "primary")
    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert f"held: {REPO}:unreplicated {unreplicated}" in listed.stdout
    assert digest_on(project, cfg, "primary", "unreplicated") == unreplicated  # still held

    dropped = invoke(project.root, "geo.reconcile", "--node", "primary", "--yes")
    assert dropped.returncode == 0, dropped.stdout + dropped.stderr
    assert "primary is a read-write secondary of secondary again" in dropped.stdout
    everywhere(project, tags)
    assert digest_on(project, cfg, "primary", "unreplicated") is None
    verified = invoke(project.root, "geo.verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


class _Interrupted(KeyboardInterrupt):
    """Ctrl-C, delivered when the promotion announces step `at`."""


@pytest.mark.docker
def test_a_promote_interrupted_at_each_step_converges_when_run_again(nodes_up: SetUp) -> None:
    project = nodes_up("i")
    tags = pushed_before(project)
    target = "secondary"
    for step in ("1/4", "2/4", "3/4", "4/4"):

        def ctrl_c(message: str, step: str = step) -> None:
            if message.startswith(step):
                raise _Interrupted(step)

        with pytest.raises(_Interrupted):
            promote.promote(project, target, timeout=60, say=ctrl_c)
        promote.promote(project, target, timeout=60, say=lambda _m: None)  # again
        cfg = project.load()
        assert cfg.primary_name == target, step
        assert not roles.read(project.data_dir(cfg)).promoting, step
        assert local_checks.one_primary(checks.Context(project)).status == "passed", step
        tags[f"after-{step[0]}"] = push_tag(project, cfg, f"after-{step[0]}")
        everywhere(project, tags)
        target = "primary" if target == "secondary" else "secondary"


@pytest.mark.docker
def test_two_nodes_that_claim_primary_fail_the_check_and_its_fix_works(nodes_up: SetUp) -> None:
    project = nodes_up("p")
    gitlab_yml = project.node(project.load(), "secondary").gitlab_yml
    gitlab_yml.write_text(gitlab_yml.read_text().replace("primary: false", "primary: true"))
    result = invoke(project.root, "geo.check", timeout=120)
    assert result.returncode == 1, result.stdout
    check = next(c for c in checks.CHECKS if c.name == "one-primary")
    lines = result.stdout.splitlines()
    assert checks.failure_line(check) in lines, result.stdout
    assert "primary and secondary all believe they are primary" in result.stdout
    at = lines.index(checks.failure_line(check))
    fix = next(line for line in lines[at:] if line.startswith("    fix: "))
    commands = [shlex.split(c) for c in re.findall(r"`(invoke [^`]+)`", fix)]
    assert commands, fix
    for argv in commands:  # the printed fix, verbatim
        done = invoke(project.root, *argv[1:])
        assert done.returncode == 0, done.stdout + done.stderr
    assert roles.claimed_primaries(
        {p.name: p.gitlab_yml for p in project.nodes(project.load())}
    ) == ["primary"]
    again = invoke(project.root, "geo.check", timeout=120)
    for name in ("one-primary", "current"):  # fixed, with no hand edit left behind
        title = next(c.title for c in checks.CHECKS if c.name == name)
        assert any(line.startswith(f"✓ {title}") for line in again.stdout.splitlines()), (
            again.stdout
        )
