"""`geo.check`'s checks of what is on disk and in the engine: gdk.yml, the image, ports,
rendered files, containers, certificates, and the tracking database."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from gdk_geo.doctor import tracking_db_check
from gdk_geo.doctor.check_model import Context, Outcome, failed, passed, yaml_mapping
from gdk_geo.errors import GdkGeoError
from gdk_geo.ops import lifecycle
from gdk_geo.pki import certs
from gdk_geo.project import ports, roles
from gdk_geo.render import drift
from gdk_geo.runtime import containers
from gdk_geo.runtime.image import OFFLINE_IMAGE, has_image


def gdk_yml(ctx: Context) -> Outcome:
    cfg = ctx.cfg
    return passed(f"{ctx.project.gdk_yml}, containers {cfg.docker.container_prefix}-*")


def engine(ctx: Context) -> Outcome:
    version = ctx.client.version().get("Version", "unknown version")
    return passed(f"Docker {version}")


def image(ctx: Context) -> Outcome:
    wanted = ctx.cfg.registry.image
    if has_image(ctx.client, wanted):
        return passed(wanted)
    if has_image(ctx.client, OFFLINE_IMAGE):
        return passed(f"{OFFLINE_IMAGE}, built offline: {wanted} is not here")
    return failed(f"neither {wanted} nor {OFFLINE_IMAGE} is in the Docker engine")


def ports_free(ctx: Context) -> Outcome:
    listeners = ctx.cfg.listeners
    ours = lifecycle.our_ports(ctx.project, ctx.cfg, ctx.client)
    ports.check_ports(listeners, ours=ours, host=ctx.cfg.listen_address)
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
            container = containers.find_ours(ctx.client, name, str(ctx.project.root))
        except GdkGeoError as exc:
            return failed(exc.what, exc.fix or "")
        if container is None:
            problems.append(f"{name} does not exist")
        elif container.status != "running":
            last = containers.logs(ctx.client, ctx.cfg, node, tail=1).strip()
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
    hostname = ctx.cfg.hostname
    if f"DNS:{hostname}" not in info.sans and f"IP:{hostname}" not in info.sans:
        problems.append(f"does not name {hostname} (it names {', '.join(info.sans) or 'nothing'})")
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


def tracking_db(ctx: Context) -> Outcome:
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
