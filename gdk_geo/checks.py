"""`geo.check`: GDK's `gdk doctor` and GitLab's `gitlab:geo:check` for the two local nodes.

Every check is declared once, below, in `CHECKS`: a title that is true when the check
passes (and is the ✗ line when it does not), what it verifies, the exact fix, and the checks
it needs first. A check is a small function from a `Context` to an `Outcome`, like GDK's
`Diagnostic` classes with their `success?` and `detail`; a `GdkGeoError` raised inside one is
its failure. A check whose prerequisite did not pass is skipped with the reason, so one
cause shows up as one ✗, not as a cascade.

The README's troubleshooting table is generated from the same declarations
(`gdk_geo.checks_docs`), so the fixes it shows are the ones `geo.check` prints.

Checks look, they don't repair: nothing here writes a file or starts a process. The one
exception is the notification probe, which pushes and then deletes a tiny image in a
scratch repository, because only a real push shows that a notification arrives.
"""

from __future__ import annotations

import hmac
import sqlite3
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import docker
import httpx
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from gdk_geo import (
    auth_checks,
    certs,
    drift,
    health,
    lifecycle,
    nodes,
    ports,
    roles,
    services,
    sync_failures,
)
from gdk_geo.errors import GdkGeoError
from gdk_geo.image import OFFLINE_IMAGE, has_image
from gdk_geo.node_settings import (
    PrimaryServiceSettings,
    SecondaryWorkerSettings,
    load_primary,
    load_secondary,
)
from gdk_geo.notification_probe import (
    EVENT_TIMEOUT,
    PROBE_REPOSITORY,
    Endpoint,
    ProbeFailed,
    probe_delivery,
)
from gdk_geo.project import NodePaths, Project
from gdk_geo.settings import NOTIFICATION_PATH, Settings, url
from gdk_geo.token_auth import ALL_ACTIONS, PULL, tool_tokens

MAX_LAG = 10  # events: a few are normal while a push is being read; more means stuck

Status = Literal["passed", "failed", "skipped"]
AuthCheck = Callable[[PrimaryServiceSettings, SecondaryWorkerSettings], tuple[str | None, str]]
MARKS: dict[Status, str] = {"passed": "✓", "failed": "✗", "skipped": "-"}


@dataclass(frozen=True)
class Outcome:
    """What one check found: passed, failed or skipped, and the detail a user needs."""

    status: Status
    detail: str = ""
    fix: str = ""  # a fix for exactly what was found, instead of the declared one


def passed(detail: str = "") -> Outcome:
    return Outcome("passed", detail)


def failed(detail: str, fix: str = "") -> Outcome:
    return Outcome("failed", detail, fix)


def skipped(why: str) -> Outcome:
    return Outcome("skipped", why)


class Context:
    """What the checks share: the project, and settings and clients made once, on demand.

    Each property raises the `GdkGeoError` a task would (bad gdk.yml, no engine, a missing
    gitlab.yml); the check that asked fails with it, and the checks after it ask again.
    """

    def __init__(self, project: Project) -> None:
        self.project = project

    @cached_property
    def cfg(self) -> Settings:
        return self.project.load()

    @cached_property
    def client(self) -> docker.DockerClient:
        return nodes.engine()

    def node(self, name: str) -> NodePaths:
        return self.project.node(self.cfg, name)

    @property
    def primary_name(self) -> str:
        return self.cfg.primary_name

    @property
    def secondary_name(self) -> str:
        """The secondary the replication checks look at: the first one."""
        return self.cfg.secondaries[0].name

    @cached_property
    def primary(self) -> PrimaryServiceSettings:
        return load_primary(self.node(self.primary_name).gitlab_yml)

    @cached_property
    def secondary(self) -> SecondaryWorkerSettings:
        return load_secondary(self.node(self.secondary_name).gitlab_yml)

    def service_url(self, name: str) -> str:
        """Where the node's Geo service listens, as its rendered gitlab.yml says: what runs,
        even when gdk.yml has changed since (the ports check tells of that)."""
        service = self.primary if name == self.primary_name else self.secondary
        return url("http", service.listen_address, service.port)


@dataclass(frozen=True)
class Check:
    """One diagnostic, declared once: the README's troubleshooting table is built from these."""

    name: str
    title: str  # true when the check passes; printed after ✓ or ✗
    verifies: str  # what is actually looked at, for the README
    fix: str  # the exact fix printed under the ✗
    run: Callable[[Context], Outcome]
    needs: tuple[str, ...] = ()  # names of checks that must pass first


@dataclass(frozen=True)
class Result:
    check: Check
    outcome: Outcome


# --- the checks ---------------------------------------------------------------------------


def _gdk_yml(ctx: Context) -> Outcome:
    cfg = ctx.cfg
    return passed(f"{ctx.project.gdk_yml}, containers {cfg.docker.container_prefix}-*")


def _engine(ctx: Context) -> Outcome:
    version = ctx.client.version().get("Version", "unknown version")
    return passed(f"Docker {version}")


def _image(ctx: Context) -> Outcome:
    wanted = ctx.cfg.registry.image
    if has_image(ctx.client, wanted):
        return passed(wanted)
    if has_image(ctx.client, OFFLINE_IMAGE):
        return passed(f"{OFFLINE_IMAGE}, built offline: {wanted} is not here")
    return failed(f"neither {wanted} nor {OFFLINE_IMAGE} is in the Docker engine")


def _ports(ctx: Context) -> Outcome:
    listeners = ctx.cfg.listeners
    ours = lifecycle.our_ports(ctx.project, ctx.cfg, ctx.client)
    ports.check_ports(listeners, ours=ours, host=ctx.cfg.listen_address)
    return passed(", ".join(str(port) for port in listeners.values()))


def _rendered(ctx: Context) -> Outcome:
    problems = []
    for paths in ctx.project.nodes(ctx.cfg):
        for path in (paths.registry_config, paths.gitlab_yml):
            try:
                _yaml_mapping(path)
            except GdkGeoError as exc:
                problems.append(exc.what)
    if problems:
        return failed("\n".join(problems))
    return passed()


def _current(ctx: Context) -> Outcome:
    found = drift.render_drift(ctx.project, ctx.cfg)
    problems = [f"{path}: edited by hand since gdk-geo wrote it" for path in found.edited]
    problems += [f"{path}: gdk.yml asks for something else now" for path in found.stale]
    if problems:
        return failed("\n".join(problems))
    return passed()


def _primary_api_url(ctx: Context) -> Outcome:
    problem = drift.api_url_problem(ctx.cfg)
    if problem:
        return failed(problem)
    return passed(ctx.cfg.primary_api_url)


def _one_primary(ctx: Context) -> Outcome:
    files = {paths.name: paths.gitlab_yml for paths in ctx.project.nodes(ctx.cfg)}
    claimed = roles.claimed_primaries(files)
    if len(claimed) > 1:
        return failed(
            f"{' and '.join(claimed)} all believe they are primary (`geo.primary: true` in "
            f"their gitlab.yml); the recorded primary is {ctx.primary_name}"
        )
    return passed(f"{ctx.primary_name} is primary")


def _containers(ctx: Context) -> Outcome:
    problems = []
    for node in ctx.cfg.node_names:
        name = nodes.container_name(ctx.cfg, node)
        try:
            container = nodes.find_ours(ctx.client, name, str(ctx.project.root))
        except GdkGeoError as exc:
            return failed(exc.what, exc.fix or "")
        if container is None:
            problems.append(f"{name} does not exist")
        elif container.status != "running":
            last = nodes.logs(ctx.client, ctx.cfg, node, tail=1).strip()
            problems.append(
                f"{name} is {container.status}" + (f"; last log: {last}" if last else "")
            )
    if problems:
        return failed("\n".join(problems))
    return passed(", ".join(nodes.container_name(ctx.cfg, n) for n in ctx.cfg.node_names))


def _certificates(ctx: Context) -> Outcome:
    now = datetime.now(UTC)
    problems, until = [], []
    for paths in ctx.project.nodes(ctx.cfg):
        if not paths.key.exists():
            problems.append(f"{paths.key} is missing: the registry cannot serve TLS without it")
            continue
        info = certs.certificate_info(paths.certificate)
        until.append(info.not_after)
        problems += [f"{paths.certificate}: {p}" for p in _certificate_problems(info, ctx, now)]
    if problems:
        return failed("\n".join(problems))
    return passed(f"until {min(until):%Y-%m-%d}")


def _certificate_problems(info: certs.CertInfo, ctx: Context, now: datetime) -> list[str]:
    problems = []
    if info.not_before > now:
        problems.append(f"not valid before {info.not_before:%Y-%m-%d %H:%M} UTC")
    if info.not_after <= now:
        problems.append(f"expired on {info.not_after:%Y-%m-%d}")
    elif info.not_after - now <= certs.RENEW_WITHIN:
        problems.append(
            f"expires on {info.not_after:%Y-%m-%d}, within {certs.RENEW_WITHIN.days} days"
        )
    hostname = ctx.cfg.hostname
    if f"DNS:{hostname}" not in info.sans and f"IP:{hostname}" not in info.sans:
        problems.append(f"does not name {hostname} (it names {', '.join(info.sans) or 'nothing'})")
    return problems


def _same_certificate(ctx: Context) -> Outcome:
    primary = certs.fingerprint(ctx.node(ctx.primary_name).certificate)
    secondary = certs.fingerprint(ctx.node(ctx.secondary_name).certificate)
    if primary != secondary:
        return failed(
            f"the secondary's {certs.CERT_NAME} ({secondary[:23]}…) is not the primary's "
            f"({primary[:23]}…)"
        )
    return passed(f"SHA-256 {primary[:23]}…")


def _secondary_verifies_primary(ctx: Context) -> Outcome:
    url, ca_file = ctx.secondary.primary_api_url, ctx.secondary.ca_file
    probe = health.probe_registry(url, ca_file)
    if not probe.ok:
        return failed(f"GET {url}/v2/ with {ca_file} as the CA: {probe.detail}")
    return passed(f"{url} with {ca_file.name} as the CA")


def _auth(run: AuthCheck) -> Callable[[Context], Outcome]:
    """A token auth check; with `registry.auth_enabled: false` there is nothing to check."""

    def check(ctx: Context) -> Outcome:
        if not ctx.primary.auth.enabled:
            return skipped("registry.auth_enabled is false: the registries are anonymous")
        problem, detail = run(ctx.primary, ctx.secondary)
        return failed(problem) if problem else passed(detail)

    return check


def _secret(ctx: Context) -> Outcome:
    paths = ctx.node(ctx.primary_name)
    expected = _dig(_yaml_mapping(paths.gitlab_yml), "registry", "notification_secret")
    sent = _notification_header(_yaml_mapping(paths.registry_config))
    if not expected:
        return failed(
            f"registry.notification_secret is empty in {paths.gitlab_yml}: "
            "every notification would be refused"
        )
    if not sent:
        return failed(
            f"{paths.registry_config} has no notification endpoint for {NOTIFICATION_PATH} "
            "with an Authorization header"
        )
    if not hmac.compare_digest(str(sent).encode(), str(expected).encode()):
        return failed(
            f"the Authorization header in {paths.registry_config} is not "
            f"registry.notification_secret of {paths.gitlab_yml}: the service answers 401"
        )
    return passed("registry config.yml and gitlab.yml agree")


def _delivery(ctx: Context) -> Outcome:
    primary = ctx.primary
    service_url = ctx.service_url(ctx.primary_name)
    probe = health.probe_service(service_url)
    if not probe.ok:
        return failed(f"the primary Geo service does not answer at {service_url} ({probe.detail})")
    try:
        delivery = probe_delivery(
            Endpoint(
                primary.registry_api_url,
                primary.ca_file,
                tool_tokens(primary.auth, ALL_ACTIONS),
            ),
            service_url,
            primary.node_token,
            replica=_replica(ctx),
        )
    except ProbeFailed as exc:
        return failed(str(exc))
    replicated = {True: "; replicated to the secondary", False: "; not on the secondary yet"}
    return passed(
        f"event {delivery.event_id} {delivery.seconds:.2f}s after pushing "
        f"{PROBE_REPOSITORY}:{delivery.tag}{replicated.get(delivery.replicated, '')}"
    )


def _replica(ctx: Context) -> Endpoint | None:
    """The secondary registry, when a worker runs that would replicate the probe."""
    secondary = ctx.secondary
    if not health.probe_service(ctx.service_url(ctx.secondary_name)).ok:
        return None
    return Endpoint(
        secondary.registry_api_url, secondary.ca_file, tool_tokens(secondary.auth, PULL)
    )


def _event_api(ctx: Context) -> Outcome:
    secondary = ctx.secondary
    own_url = ctx.service_url(ctx.primary_name)
    if not health.probe_service(own_url).ok:
        return skipped(f"the primary Geo service does not answer at {own_url}")
    url = secondary.primary_geo_url.rstrip("/") + "/api/v4/geo/events"
    try:
        response = httpx.get(
            url,
            params={"after": 0, "limit": 1},
            headers={"Authorization": f"Bearer {secondary.node_token}"},
            verify=_verify(url, secondary.ca_file),
            timeout=5.0,
            trust_env=False,
        )
    except httpx.HTTPError as exc:
        return failed(f"GET {url}: {type(exc).__name__}: {exc}")
    if response.status_code == 401:
        return failed(f"{url} refused the secondary's node token (HTTP 401)")
    if response.status_code != 200:
        return failed(f"GET {url}: HTTP {response.status_code}")
    return passed(url)


def _worker(ctx: Context) -> Outcome:
    url = ctx.service_url(ctx.secondary_name)
    probe = health.probe_service(url)
    if not probe.ok:
        state = services.state(ctx.node(ctx.secondary_name))
        running = f"pid {state.pid} runs" if state.running else "no worker process runs"
        return failed(f"{url}/-/health: {probe.detail} ({running})")
    return passed(url)


def _lag(ctx: Context) -> Outcome:
    url = ctx.service_url(ctx.secondary_name) + "/api/v4/geo/replication/status"
    try:
        response = httpx.get(url, timeout=5.0, trust_env=False)
        response.raise_for_status()
        status: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return failed(f"GET {url}: {exc}")
    counts = status.get("counts") or {}
    summary = ", ".join(f"{state} {counts.get(state, 0)}" for state in _STATES)
    feed = status.get("event_feed") or {}
    if not feed.get("connected"):
        return failed(f"the worker is not reading the primary's events: {feed.get('error')}")
    lag = status.get("lag")
    if lag is None or lag > MAX_LAG:
        return failed(f"{lag} events behind the primary (at most {MAX_LAG} is normal); {summary}")
    failures = sync_failures.failing(status.get("repositories") or [])
    if failures:
        page = ctx.service_url(ctx.secondary_name) + "/admin/geo"
        reason = str(failures[0].get("last_sync_failure") or "")
        return failed(
            sync_failures.describe(failures, summary, page), sync_failures.repair(reason, ctx.cfg)
        )
    return passed(f"{lag} events behind; {summary}")


_STATES = ("synced", "pending", "started", "failed")


def _tracking_db(ctx: Context) -> Outcome:
    path = ctx.secondary.tracking_db_path
    problem = tracking_db_problem(path)
    if problem:
        return failed(problem)
    return passed(str(path) if path.exists() else f"{path} (created when the worker starts)")


CHECKS: tuple[Check, ...] = (
    Check(
        "gdk.yml",
        "gdk.yml is valid",
        "gdk.yml exists, parses, and every setting has the right type and range",
        "correct gdk.yml as the message says (`invoke geo.config.list` lists every setting; "
        "`invoke geo.setup` creates gdk.yml when there is none)",
        _gdk_yml,
    ),
    Check(
        "engine",
        "Docker engine answers",
        "the docker SDK reaches the engine (DOCKER_HOST, or the default socket)",
        "start the Docker engine (Docker Desktop, or `sudo systemctl start docker`), or "
        "point DOCKER_HOST at a running engine",
        _engine,
    ),
    Check(
        "image",
        "registry image is present",
        "`registry.image`, or the offline `gdk-geo/registry:local`, is in the engine",
        "`invoke geo.image` (pulls the image, or builds gdk-geo/registry:local from the "
        "local registry binary)",
        _image,
        needs=("gdk.yml", "engine"),
    ),
    Check(
        "ports",
        "ports are distinct and free",
        "the four listeners have four valid ports, each free or held by our own node",
        "give each key named above a free port of its own: "
        "`invoke geo.config.set KEY PORT`, then `invoke geo.restart`",
        _ports,
        needs=("gdk.yml", "engine"),
    ),
    Check(
        "rendered",
        "node configuration is rendered",
        "each node's `registry/config.yml` and `config/gitlab.yml` exist and parse",
        "`invoke geo.reconfigure`",
        _rendered,
        needs=("gdk.yml",),
    ),
    Check(
        "current",
        "rendered files are what gdk.yml asks for",
        "each node's rendered files equal what gdk.yml and the stored secrets render to now, "
        "and none was edited by hand since gdk-geo wrote it",
        "`invoke geo.restart --force` (renders every file from gdk.yml again, backing up "
        "hand-edited ones, and restarts both nodes)",
        _current,
        needs=("ports", "rendered"),
    ),
    Check(
        "one-primary",
        "exactly one node believes it is primary",
        "no two nodes' rendered `config/gitlab.yml` say `geo.primary: true`",
        "`invoke geo.restart --force` (renders every node's role from the recorded roles "
        "again and restarts every node)",
        _one_primary,
        needs=("rendered",),
    ),
    Check(
        "primary-api-url",
        "the secondary syncs from the primary registry",
        "`geo.secondary.registry_replication.primary_api_url` is https on a local name and "
        "the primary registry's port",
        "`invoke geo.config.set geo.secondary.registry_replication.primary_api_url ''` "
        "(derives the primary registry's URL), then `invoke geo.restart`",
        _primary_api_url,
        needs=("gdk.yml",),
    ),
    Check(
        "containers",
        "registry containers are running",
        "both registry containers exist and run",
        "`invoke geo.setup` (starts what is stopped; `invoke geo.logs` shows why a container "
        "exited)",
        _containers,
        needs=("image", "rendered"),
    ),
    Check(
        "certificates",
        "certificates are valid for 30 more days",
        "both nodes' `registry_host.key` exist and their `registry_host.crt` parse, are in their "
        "validity period, name `hostname` and do not expire within 30 days",
        "`invoke geo.restart` (renews the certificate, copies it to the secondary and "
        "restarts both registries)",
        _certificates,
        needs=("gdk.yml",),
    ),
    Check(
        "same-certificate",
        "both nodes have the same certificate",
        "the SHA-256 fingerprints of both nodes' `registry_host.crt` are equal",
        "`invoke geo.restart` (copies the primary's certificate to the secondary and restarts it)",
        _same_certificate,
        needs=("certificates",),
    ),
    Check(
        "tls",
        "the secondary verifies the primary registry",
        "a real `GET /v2/` to the primary registry, verified with the secondary's "
        "`registry_host.crt` as the CA",
        "`invoke geo.restart` (both registries then serve the current certificate)",
        _secondary_verifies_primary,
        needs=("containers", "same-certificate", "primary-api-url"),
    ),
    Check(
        "signing-pair",
        "both nodes have the same token signing pair",
        "both nodes' `localhost.crt` and `localhost.key` (the registry token signing pair) "
        "are byte for byte the same",
        "`invoke geo.restart` (copies the primary's signing pair to the secondary and "
        "restarts both nodes with it)",
        _auth(auth_checks.signing_pair),
        needs=("rendered",),
    ),
    Check(
        "registry-token",
        "each registry accepts a token minted now",
        "a token for the catalog, signed now with each node's `localhost.key`, is sent to "
        "that node's registry (`GET /v2/_catalog`), which must answer 200",
        "`invoke geo.restart` (recreates each registry container with the current "
        "`localhost.crt` as its `rootcertbundle`)",
        _auth(auth_checks.registry_tokens),
        needs=("containers", "signing-pair"),
    ),
    Check(
        "secret",
        "notification secret matches gitlab.yml",
        "the Authorization header in the primary registry's `config.yml` equals "
        "`registry.notification_secret` in the primary's `gitlab.yml`, and is not empty",
        "`invoke geo.restart --force` (renders both files again from the stored secret, "
        "backing up the edited ones, and restarts)",
        _secret,
        needs=("current",),
    ),
    Check(
        "delivery",
        "the primary registry delivers notifications",
        f"a real push of a tiny image to `{PROBE_REPOSITORY}` shows up in the primary's "
        f"event API within {EVENT_TIMEOUT:.0f} seconds (the probe is deleted afterwards)",
        "`invoke geo.restart --node primary`; if it still fails, "
        "`invoke geo.logs --node primary` shows what the registry and the Geo service say",
        _delivery,
        needs=("containers", "certificates", "secret", "registry-token"),
    ),
    Check(
        "event-api",
        "the secondary reads the primary's event API",
        "`GET /api/v4/geo/events` at the secondary's `geo.primary_node_url` with the "
        "secondary's node token",
        "`invoke geo.restart --force` (renders the same node token and primary URL into "
        "both nodes' gitlab.yml, and restarts)",
        _event_api,
        needs=("rendered",),
    ),
    Check(
        "worker",
        "the secondary Geo worker answers",
        "the worker's `/-/health`",
        "`invoke geo.restart --node secondary`; `invoke geo.logs --node secondary` shows "
        "why it stopped",
        _worker,
        needs=("rendered",),
    ),
    Check(
        "realm",
        "the realm each registry advertises answers",
        "an anonymous `GET /v2/` to each registry is challenged for a Bearer token, and the "
        "realm it names (`/jwt/auth` of the node's Geo service) hands out a token",
        "`invoke geo.restart --force` (renders each registry's realm again, backing up "
        "edited files, and restarts both nodes)",
        _auth(auth_checks.realms),
        needs=("delivery", "worker"),
    ),
    Check(
        "lag",
        "replication keeps up",
        f"the worker reads the primary's events, is at most {MAX_LAG} behind "
        "(`/api/v4/geo/replication/status`) and no repository is failed; the first failed "
        "ones are named with their failure, and the fix printed is for that failure",
        "`invoke geo.logs --node secondary` shows what the worker is stuck on; "
        "`invoke geo.sync --all` catches up now",
        _lag,
        needs=("worker", "event-api", "primary-api-url"),
    ),
    Check(
        "tracking-db",
        "the tracking database is writable",
        "the secondary's `geo/tracking.sqlite3` opens and a write transaction starts, or "
        "it can be created, as the worker will do it (run by the same user)",
        "`chmod u+w` the file named above and its directory, then "
        "`invoke geo.restart --node secondary`",
        _tracking_db,
        needs=("rendered",),
    ),
)


# --- running them -------------------------------------------------------------------------


def run_checks(
    project: Project,
    report: Callable[[Result], None] = lambda _result: None,
    checks: Iterable[Check] = CHECKS,
) -> list[Result]:
    """Run every check in order, calling `report` as each one finishes.

    A check whose `needs` did not all pass is skipped, naming the first one that did not.
    """
    context = Context(project)
    done: dict[str, Result] = {}
    for check in checks:
        blocker = next((done[n] for n in check.needs if done[n].outcome.status != "passed"), None)
        if blocker is not None:
            outcome = skipped(f"needs “{blocker.check.title}”")
        else:
            outcome = _run(check, context)
        done[check.name] = Result(check, outcome)
        report(done[check.name])
    return list(done.values())


def _run(check: Check, context: Context) -> Outcome:
    try:
        return check.run(context)
    except GdkGeoError as exc:
        return failed(exc.what + (f"\nwhere: {exc.where}" if exc.where else ""))


def headline(result: Result) -> str:
    """The line `geo.check` prints for a result: mark, title, and a short detail."""
    outcome = result.outcome
    line = f"{MARKS[outcome.status]} {result.check.title}"
    if outcome.status == "passed" and outcome.detail:
        return f"{line} ({outcome.detail})"
    if outcome.status == "skipped":
        return f"{line}: skipped: {outcome.detail}"
    return line


def failure_line(check: Check) -> str:
    """Exactly what `geo.check` prints when `check` fails (the README quotes it)."""
    return headline(Result(check, failed("")))


def explanation(result: Result) -> list[str]:
    """The lines under a ✗: what was found, then the fix."""
    if result.outcome.status != "failed":
        return []
    lines = [f"    {line}" for line in result.outcome.detail.splitlines()]
    return [*lines, f"    fix: {result.outcome.fix or result.check.fix}"]


# --- small helpers ------------------------------------------------------------------------


def _yaml_mapping(path: Path) -> dict[str, Any]:
    try:
        data = YAML(typ="safe").load(path.read_text())
    except FileNotFoundError:
        raise GdkGeoError(f"{path} does not exist") from None
    except (OSError, YAMLError) as exc:
        raise GdkGeoError(f"{path} cannot be read as YAML: {exc}") from None
    if not isinstance(data, dict):
        raise GdkGeoError(f"{path} is not a YAML mapping")
    return data


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data


def _notification_header(registry_config: dict[str, Any]) -> str | None:
    """The Authorization value the registry sends to the Geo service's notification URL."""
    for endpoint in _dig(registry_config, "notifications", "endpoints") or []:
        if not isinstance(endpoint, dict) or NOTIFICATION_PATH not in str(endpoint.get("url")):
            continue
        values = _dig(endpoint, "headers", "Authorization")
        if isinstance(values, list) and values:
            return str(values[0])
    return None


def _verify(url: str, ca_file: Path) -> Any:
    return health.tls_context(ca_file) if url.lower().startswith("https://") else True


def tracking_db_problem(path: Path) -> str | None:
    """What would stop the worker writing its tracking database, or None.

    Found the way the worker meets it, as the user who runs both (`geo.setup` starts the
    worker as its caller): open the file and start a write transaction, or create the
    missing directories and a file where the worker will. Mode bits are not the test:
    root writes through 0444, and a worker run by root did, while the check said ✗.
    """
    if path.exists():
        try:
            _try_write(path)
        except sqlite3.Error as exc:
            return f"{path}: {exc}"
        return None
    directory = _existing_parent(path)
    try:
        _try_create(path.parent)
    except OSError as exc:
        return f"{path} does not exist yet and cannot be created in {directory} ({exc.strerror})"
    return None


def _try_create(directory: Path) -> None:
    """Create `directory` (and missing parents) and a file in it, then remove them all."""
    missing = [d for d in (directory, *directory.parents) if not d.exists()]
    created: list[Path] = []
    try:
        for each in reversed(missing):
            each.mkdir()
            created.append(each)
        with tempfile.TemporaryFile(dir=directory):
            pass
    finally:
        for each in reversed(created):
            each.rmdir()


def _try_write(path: Path) -> None:
    """Start a write transaction and roll it back: what the worker does first, minus writing."""
    connection = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=5.0)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
    finally:
        connection.close()


def _existing_parent(path: Path) -> Path:
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent
