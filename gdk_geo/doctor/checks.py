"""`geo.check`: GDK's `gdk doctor` and GitLab's `gitlab:geo:check` for the two local nodes.

Every check is declared once, below, in `CHECKS`: a title that is true when the check
passes (and is the ✗ line when it does not), what it verifies, the exact fix, and the checks
it needs first. A check is a small function from a `Context` to an `Outcome`, like GDK's
`Diagnostic` classes with their `success?` and `detail`; a `GdkGeoError` raised inside one is
its failure. A check whose prerequisite did not pass is skipped with the reason, so one
cause shows up as one ✗, not as a cascade.

The checks of replication are declared `each_secondary`: with several secondaries each runs
once per secondary, its line naming the node (`✗ replication keeps up (dc3)`), its
prerequisites those of the same node, and its fix aimed at that node. A check of the whole
project that needs one of them needs it to pass on every secondary.

The troubleshooting table of docs/troubleshooting.md is generated from the same
declarations (`gdk_geo.doctor.checks_docs`), so the fixes it shows are the ones `geo.check`
prints.

Checks look, they don't repair: nothing here writes a file or starts a process. The one
exception is the notification probe, which pushes and then deletes a tiny image in a
scratch repository, because only a real push shows that a notification arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from gdk_geo.doctor import auth_checks, live_checks, local_checks
from gdk_geo.doctor.check_model import (
    MARKS,
    Check,
    Context,
    Outcome,
    Result,
    failed,
    passed,
    skipped,
)
from gdk_geo.doctor.live_checks import MAX_LAG
from gdk_geo.doctor.local_checks import tracking_db_problem
from gdk_geo.doctor.notification_probe import EVENT_TIMEOUT, PROBE_REPOSITORY
from gdk_geo.errors import GdkGeoError
from gdk_geo.project import Project

__all__ = [
    "CHECKS",
    "MARKS",
    "Check",
    "Outcome",
    "Result",
    "failed",
    "passed",
    "run_checks",
    "skipped",
    "tracking_db_problem",
]


CHECKS: tuple[Check, ...] = (
    Check(
        "gdk.yml",
        "gdk.yml is valid",
        "gdk.yml exists, parses, and every setting has the right type and range",
        "correct gdk.yml as the message says (`invoke geo.config.list` lists every setting; "
        "`invoke geo.setup` creates gdk.yml when there is none)",
        local_checks.gdk_yml,
    ),
    Check(
        "engine",
        "Docker engine answers",
        "the docker SDK reaches the engine (DOCKER_HOST, or the default socket)",
        "start the Docker engine (Docker Desktop, or `sudo systemctl start docker`), or "
        "point DOCKER_HOST at a running engine",
        local_checks.engine,
    ),
    Check(
        "image",
        "registry image is present",
        "`registry.image`, or the offline `gdk-geo/registry:local`, is in the engine",
        "`invoke geo.image` (pulls the image, or builds gdk-geo/registry:local from the "
        "local registry binary)",
        local_checks.image,
        needs=("gdk.yml", "engine"),
    ),
    Check(
        "ports",
        "ports are distinct and free",
        "the four listeners have four valid ports, each free or held by our own node",
        "give each key named above a free port of its own: "
        "`invoke geo.config.set KEY PORT`, then `invoke geo.restart`",
        local_checks.ports_free,
        needs=("gdk.yml", "engine"),
    ),
    Check(
        "rendered",
        "node configuration is rendered",
        "each node's `registry/config.yml` and `config/gitlab.yml` exist and parse",
        "`invoke geo.reconfigure`",
        local_checks.rendered,
        needs=("gdk.yml",),
    ),
    Check(
        "current",
        "rendered files are what gdk.yml asks for",
        "each node's rendered files equal what gdk.yml and the stored secrets render to now, "
        "and none was edited by hand since gdk-geo wrote it",
        "`invoke geo.restart --force` (renders every file from gdk.yml again, backing up "
        "hand-edited ones, and restarts every node)",
        local_checks.current,
        needs=("ports", "rendered"),
    ),
    Check(
        "one-primary",
        "exactly one node believes it is primary",
        "no two nodes' rendered `config/gitlab.yml` say `geo.primary: true`",
        "`invoke geo.restart --force` (renders every node's role from the recorded roles "
        "again and restarts every node)",
        local_checks.one_primary,
        needs=("rendered",),
    ),
    Check(
        "primary-api-url",
        "the secondary syncs from the primary registry",
        "`geo.secondary.registry_replication.primary_api_url` is https on a local name and "
        "the primary registry's port",
        "`invoke geo.config.set geo.secondary.registry_replication.primary_api_url ''` "
        "(derives the primary registry's URL), then `invoke geo.restart`",
        local_checks.primary_api_url,
        needs=("gdk.yml",),
        each_secondary=True,
    ),
    Check(
        "containers",
        "registry containers are running",
        "every node's registry container exists and runs",
        "`invoke geo.setup` (starts what is stopped; `invoke geo.logs` shows why a container "
        "exited)",
        local_checks.containers_running,
        needs=("image", "rendered"),
    ),
    Check(
        "certificates",
        "certificates are valid for 30 more days",
        "every node's `registry_host.key` exists and its `registry_host.crt` parses, is in its "
        "validity period, name `hostname` and do not expire within 30 days",
        "`invoke geo.restart` (renews the certificate, copies it to every secondary and "
        "restarts every registry)",
        local_checks.certificates,
        needs=("gdk.yml",),
    ),
    Check(
        "same-certificate",
        "every node has the same certificate",
        "the SHA-256 fingerprints of every node's `registry_host.crt` are equal",
        "`invoke geo.restart` (copies the primary's certificate to every secondary and "
        "restarts them)",
        local_checks.same_certificate,
        needs=("certificates",),
        each_secondary=True,
    ),
    Check(
        "tls",
        "the secondary verifies the primary registry",
        "a real `GET /v2/` to the primary registry, verified with the secondary's "
        "`registry_host.crt` as the CA",
        "`invoke geo.restart` (every registry then serves the current certificate)",
        live_checks.secondary_verifies_primary,
        needs=("containers", "same-certificate", "primary-api-url"),
        each_secondary=True,
    ),
    Check(
        "signing-pair",
        "every node has the same token signing pair",
        "every node's `localhost.crt` and `localhost.key` (the registry token signing pair) "
        "are byte for byte the same",
        "`invoke geo.restart` (copies the primary's signing pair to every secondary and "
        "restarts every node with it)",
        live_checks.auth(auth_checks.signing_pair),
        needs=("rendered",),
        each_secondary=True,
    ),
    Check(
        "registry-token",
        "each registry accepts a token minted now",
        "a token for the catalog, signed now with each node's `localhost.key`, is sent to "
        "that node's registry (`GET /v2/_catalog`), which must answer 200",
        "`invoke geo.restart` (recreates each registry container with the current "
        "`localhost.crt` as its `rootcertbundle`)",
        live_checks.auth(auth_checks.registry_tokens),
        needs=("containers", "signing-pair"),
        each_secondary=True,
    ),
    Check(
        "secret",
        "notification secret matches gitlab.yml",
        "the Authorization header in the primary registry's `config.yml` equals "
        "`registry.notification_secret` in the primary's `gitlab.yml`, and is not empty",
        "`invoke geo.restart --force` (renders both files again from the stored secret, "
        "backing up the edited ones, and restarts)",
        live_checks.secret,
        needs=("current",),
    ),
    Check(
        "delivery",
        "the primary registry delivers notifications",
        f"a real push of a tiny image to `{PROBE_REPOSITORY}` shows up in the primary's "
        f"event API within {EVENT_TIMEOUT:.0f} seconds (the probe is deleted afterwards)",
        "`invoke geo.restart --node primary`; if it still fails, "
        "`invoke geo.logs --node primary` shows what the registry and the Geo service say",
        live_checks.delivery,
        needs=("containers", "certificates", "secret", "registry-token"),
    ),
    Check(
        "event-api",
        "the secondary reads the primary's event API",
        "`GET /api/v4/geo/events` at the secondary's `geo.primary_node_url` with the "
        "secondary's node token",
        "`invoke geo.restart --force` (renders the same node token and primary URL into "
        "every node's gitlab.yml, and restarts)",
        live_checks.event_api,
        needs=("rendered",),
        each_secondary=True,
    ),
    Check(
        "worker",
        "the secondary Geo worker answers",
        "the worker's `/-/health`",
        "`invoke geo.restart --node secondary`; `invoke geo.logs --node secondary` shows "
        "why it stopped",
        live_checks.worker,
        needs=("rendered",),
        each_secondary=True,
    ),
    Check(
        "realm",
        "the realm each registry advertises answers",
        "an anonymous `GET /v2/` to each registry is challenged for a Bearer token, and the "
        "realm it names (`/jwt/auth` of the node's Geo service) hands out a token",
        "`invoke geo.restart --force` (renders each registry's realm again, backing up "
        "edited files, and restarts every node)",
        live_checks.auth(auth_checks.realms),
        needs=("containers", "tls", "event-api", "worker"),
        each_secondary=True,
    ),
    Check(
        "link",
        "every shaped link carries traffic",
        "each node's link as `geo.link` shaped it: its relay runs and the link is not down; "
        "the round trip from each secondary to the primary's Geo service, measured along "
        "the path its own connections take",
        "`invoke geo.link --node N --up` ends a partition; `invoke geo.setup` starts a relay "
        "that is not running",
        live_checks.links,
        needs=("rendered",),
    ),
    Check(
        "lag",
        "replication keeps up",
        f"the worker reads the primary's events, is at most {MAX_LAG} behind "
        "(`/api/v4/geo/replication/status`) and no repository is failed; the first failed "
        "ones are named with their failure, and the fix printed is for that failure",
        "`invoke geo.logs --node secondary` shows what the worker is stuck on; "
        "`invoke geo.sync --all` catches up now",
        live_checks.lag,
        needs=("worker", "event-api", "primary-api-url"),
        each_secondary=True,
    ),
    Check(
        "tracking-db",
        "the tracking database is writable",
        "the secondary's `geo/tracking.sqlite3` opens and takes a write (rolled back), or it "
        "can be created, as the worker will do it (run by the same user); a failure is "
        "traced to its cause (a read-only mount, an immutable attribute, owner and mode, a "
        "damaged database) and the fix printed is for that cause, with the exact paths",
        "make the file named above and its directory writable by the user who runs the "
        "worker, then `invoke geo.restart --node secondary`",
        local_checks.tracking_db,
        needs=("rendered",),
        each_secondary=True,
    ),
)


def run_checks(
    project: Project,
    report: Callable[[Result], None] = lambda _result: None,
    checks: Iterable[Check] = CHECKS,
) -> list[Result]:
    """Run every check in order, calling `report` as each one finishes.

    A check whose `needs` did not all pass is skipped, naming the first one that did not.
    """
    context = Context(project)
    done: list[Result] = []
    for check in checks:
        for node in _nodes_of(check, context):
            blocker = next((r for r in _needed(check, node, done) if not _ok(r)), None)
            if blocker is not None:
                outcome = skipped(f"needs “{blocker.check.title}”")
            else:
                outcome = _run(check, context.of(node) if node else context)
            done.append(Result(check, outcome, node))
            report(done[-1])
    return done


def _nodes_of(check: Check, context: Context) -> list[str | None]:
    """Whom `check` runs for: each secondary when it is per-secondary and there are
    several, else once (None: the only secondary, or the project as a whole)."""
    if not check.each_secondary:
        return [None]
    try:
        names = context.secondary_names
    except GdkGeoError:
        return [None]  # gdk.yml is broken: the check fails (or is skipped) once, for that
    return list(names) if len(names) > 1 else [None]


def _needed(check: Check, node: str | None, done: list[Result]) -> list[Result]:
    """The results `check` (for `node`) waits on: a per-secondary prerequisite on the same
    node, or on every node when `check` is of the whole project."""
    return [
        result
        for result in done
        if result.check.name in check.needs and (node is None or result.node in (None, node))
    ]


def _ok(result: Result) -> bool:
    return result.outcome.status == "passed"


def _run(check: Check, context: Context) -> Outcome:
    try:
        return check.run(context)
    except GdkGeoError as exc:
        return failed(exc.what + (f"\nwhere: {exc.where}" if exc.where else ""))


def headline(result: Result) -> str:
    """The line `geo.check` prints for a result: mark, title, and a short detail."""
    outcome = result.outcome
    line = f"{MARKS[outcome.status]} {result.check.title}"
    if outcome.status == "passed":
        said = ": ".join(part for part in (result.node, outcome.detail) if part)
        return f"{line} ({said})" if said else line
    if result.node:
        line = f"{line} ({result.node})"
    if outcome.status == "skipped":
        return f"{line}: skipped: {outcome.detail}"
    return line


def failure_line(check: Check, node: str | None = None) -> str:
    """Exactly what `geo.check` prints when `check` fails (the troubleshooting table quotes
    it without a node; with several secondaries, a per-secondary check's line names its
    `node`)."""
    return headline(Result(check, failed(""), node))


def explanation(result: Result) -> list[str]:
    """The lines under a ✗: what was found, then the fix."""
    if result.outcome.status != "failed":
        return []
    lines = [f"    {line}" for line in result.outcome.detail.splitlines()]
    return [*lines, f"    fix: {aimed(result.outcome.fix or result.check.fix, result.node)}"]


def aimed(fix: str, node: str | None) -> str:
    """`fix` aimed at secondary `node`: the declared fixes name the two-node form's
    `secondary` (a node is named only when there are several secondaries, which only
    `geo.nodes` declares), and `geo.sync` acts on the first secondary unless told `--node`."""
    if node is None:
        return fix
    fix = fix.replace("--node secondary", f"--node {node}")
    fix = fix.replace("geo.secondary.", f"geo.nodes.{node}.")
    return re.sub(r"`invoke geo\.sync\b", f"`invoke geo.sync --node {node}", fix)
