"""`geo.check`'s checks of what is on disk and in the engine: gdk.yml, the image, ports,
rendered files, containers, certificates, and the tracking database."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from gdk_geo.doctor import tracking_db_check
from gdk_geo.doctor.check_model import Context, Outcome, failed, passed, yaml_mapping
from gdk_geo.errors import GdkGeoError
from gdk_geo.ops import lifecycle
from gdk_geo.pki import certs
from gdk_geo.project import TRACKING_DB, ports, roles
from gdk_geo.render import drift
from gdk_geo.runtime import containers, sites
from gdk_geo.runtime.image import OFFLINE_IMAGE, has_image


def gdk_yml(ctx: Context) -> Outcome:
    cfg = ctx.cfg
    return passed(f"{ctx.project.gdk_yml}, containers {cfg.docker.container_prefix}-*")


def engine(ctx: Context) -> Outcome:
    version = ctx.client.version().get("Version", "unknown version")
    answered, refused = [f"Docker {version}"], []
    for node in ctx.place.engines.remote_nodes():
        try:
            client = ctx.place.client(node)
        except GdkGeoError as exc:
            refused.append(exc)
            continue
        remote = client.version().get("Version", "unknown version")
        answered.append(f"{node}: Docker {remote} at {ctx.place.engine_label(node)}")
    if refused:
        return failed("\n".join(exc.what for exc in refused), refused[0].fix)
    return passed("; ".join(answered))


def image(ctx: Context) -> Outcome:
    wanted = ctx.cfg.registry.image
    if has_image(ctx.client, wanted):
        found = wanted
    elif has_image(ctx.client, OFFLINE_IMAGE):
        found = OFFLINE_IMAGE
    else:
        return failed(f"neither {wanted} nor {OFFLINE_IMAGE} is in the Docker engine")
    lacking = [
        f"{node} ({ctx.place.engine_label(node)})"
        for node in ctx.place.engines.remote_nodes()
        if not has_image(ctx.place.client(node), found)
    ]
    if lacking:
        return failed(
            f"{found} is not on the engine of {', '.join(lacking)}",
            "`invoke geo.setup` (loads the image into every node's engine)",
        )
    return passed(
        found if found == wanted else f"{OFFLINE_IMAGE}, built offline: {wanted} is not here"
    )


def ports_free(ctx: Context) -> Outcome:
    listeners = ctx.cfg.listeners
    ours = lifecycle.our_ports(ctx.project, ctx.cfg, ctx.client)
    hosts = {key: host for key, (host, _port) in ctx.cfg.local_listeners.items()}
    ports.check_ports(listeners, ours=ours, host=ctx.cfg.listen_address, hosts=hosts)
    return passed(", ".join(str(port) for port in listeners.values()))


def rendered(ctx: Context) -> Outcome:
    problems = []
    for paths in ctx.project.nodes(ctx.cfg):
        for path in (paths.registry_config, paths.gitlab_yml):
            try:
                yaml_mapping(path)
            except GdkGeoError as exc:
                problems.append(exc.what)
    if problems:
        return failed("\n".join(problems))
    return passed()


def current(ctx: Context) -> Outcome:
    found = drift.render_drift(ctx.project, ctx.cfg)
    problems = [f"{path}: edited by hand since gdk-geo wrote it" for path in found.edited]
    problems += [f"{path}: gdk.yml asks for something else now" for path in found.stale]
    if problems:
        return failed("\n".join(problems))
    return passed()


def primary_api_url(ctx: Context) -> Outcome:
    problem = drift.api_url_problem(ctx.cfg, ctx.secondary_name)
    if problem:
        return failed(problem)
    return passed(ctx.cfg.primary_api_url_of(ctx.secondary_name))


def one_primary(ctx: Context) -> Outcome:
    files = {paths.name: paths.gitlab_yml for paths in ctx.project.nodes(ctx.cfg)}
    claimed = roles.claimed_primaries(files)
    if len(claimed) > 1:
        return failed(
            f"{' and '.join(claimed)} all believe they are primary (`geo.primary: true` in "
            f"their gitlab.yml); the recorded primary is {ctx.primary_name}"
        )
    return passed(f"{ctx.primary_name} is primary")


def containers_running(ctx: Context) -> Outcome:
    problems = []
    for node in ctx.cfg.node_names:
        name = containers.container_name(ctx.cfg, node)
        try:
            container = ctx.place.registry_container(node)
        except GdkGeoError as exc:
            return failed(exc.what, exc.fix or "")
        if container is None:
            problems.append(f"{name} does not exist")
        elif container.status != "running":
            last = ctx.place.registry_logs(node, tail=1).strip()
            problems.append(
                f"{name} is {container.status}" + (f"; last log: {last}" if last else "")
            )
    if problems:
        return failed("\n".join(problems))
    return passed(", ".join(containers.container_name(ctx.cfg, n) for n in ctx.cfg.node_names))


def certificates(ctx: Context) -> Outcome:
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
    for name in dict.fromkeys([ctx.cfg.hostname, *(n.hostname for n in ctx.cfg.nodes)]):
        if f"DNS:{name}" not in info.sans and f"IP:{name}" not in info.sans:
            problems.append(f"does not name {name} (it names {', '.join(info.sans) or 'nothing'})")
    return problems


def same_certificate(ctx: Context) -> Outcome:
    primary = certs.fingerprint(ctx.node(ctx.primary_name).certificate)
    secondary = certs.fingerprint(ctx.node(ctx.secondary_name).certificate)
    if primary != secondary:
        return failed(
            f"the secondary's {certs.CERT_NAME} ({secondary[:23]}…) is not the primary's "
            f"({primary[:23]}…)"
        )
    return passed(f"SHA-256 {primary[:23]}…")


# Run in a remote worker's own container: the probe as the worker meets its database there.
_REMOTE_PROBE = (
    "import json, sys; from pathlib import Path; "
    "from gdk_geo.doctor.tracking_db_check import diagnose; "
    "p = diagnose(Path(sys.argv[1])); "
    "print(json.dumps(None if p is None else [p.what, p.fix]))"
)


def _remote_tracking_db(ctx: Context, node: str) -> Outcome:
    """The tracking-database probe, run where the worker runs: in its container, on its
    engine, on the database in its volume."""
    path = f"{sites.NODE_ROOT}/{TRACKING_DB}"
    where = f"{path} in volume {ctx.place.names(node).root_volume}"
    found = ctx.place.run_python(node, _REMOTE_PROBE, path)
    if found is None:
        return failed(
            f"the worker's container {ctx.place.names(node).service} on "
            f"{ctx.place.engine_label(node)} is not running: nothing there can open it",
            f"`invoke geo.restart --node {node}` (starts the worker's container again)",
        )
    problem = json.loads(found)
    if problem is not None:
        return failed(*problem)
    return passed(where)


def tracking_db(ctx: Context) -> Outcome:
    if ctx.place.is_remote(ctx.secondary_name):
        return _remote_tracking_db(ctx, ctx.secondary_name)
    path = ctx.secondary.tracking_db_path
    problem = tracking_db_check.diagnose(path)
    if problem:
        return failed(problem.what, problem.fix)
    return passed(str(path) if path.exists() else f"{path} (created when the worker starts)")


def tracking_db_problem(path: Path) -> str | None:
    """What would stop the worker writing its tracking database, or None (the cause only;
    `tracking_db_check.diagnose` has the fix for it too)."""
    problem = tracking_db_check.diagnose(path)
    return problem.what if problem else None
