"""`geo.check`'s checks of what runs: TLS between the nodes, token auth, the notification
secret and a real delivery, the event API, the worker and its lag."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from gdk_geo.doctor import sync_failures
from gdk_geo.doctor.check_model import (
    AuthCheck,
    Context,
    Outcome,
    failed,
    passed,
    skipped,
    yaml_mapping,
)
from gdk_geo.doctor.notification_probe import (
    PROBE_REPOSITORY,
    Endpoint,
    ProbeFailed,
    probe_delivery,
)
from gdk_geo.node.token_auth import ALL_ACTIONS, PULL, tool_tokens
from gdk_geo.ops import link
from gdk_geo.registry import http
from gdk_geo.runtime import health, services
from gdk_geo.secondary.snapshot import StatusSnapshot
from gdk_geo.settings.topology import NOTIFICATION_PATH

MAX_LAG = 10  # events: a few are normal while a push is being read; more means stuck


def secondary_verifies_primary(ctx: Context) -> Outcome:
    url, ca_file = ctx.secondary.primary_api_url, ctx.secondary.ca_file
    probe = health.probe_registry(url, ca_file)
    if not probe.ok:
        return failed(f"GET {url}/v2/ with {ca_file} as the CA: {probe.detail}")
    return passed(f"{url} with {ca_file.name} as the CA")


def auth(run: AuthCheck) -> Callable[[Context], Outcome]:
    """A token auth check; with `registry.auth_enabled: false` there is nothing to check."""

    def check(ctx: Context) -> Outcome:
        if not ctx.primary.auth.enabled:
            return skipped("registry.auth_enabled is false: the registries are anonymous")
        problem, detail = run(ctx.primary, ctx.secondary)
        return failed(problem) if problem else passed(detail)

    return check


def secret(ctx: Context) -> Outcome:
    paths = ctx.node(ctx.primary_name)
    expected = _dig(yaml_mapping(paths.gitlab_yml), "registry", "notification_secret")
    sent = _notification_header(yaml_mapping(paths.registry_config))
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


def delivery(ctx: Context) -> Outcome:
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


def event_api(ctx: Context) -> Outcome:
    secondary = ctx.secondary
    own_url = ctx.service_url(ctx.primary_name)
    if not health.probe_service(own_url).ok:
        return skipped(f"the primary Geo service does not answer at {own_url}")
    url = secondary.primary_geo_url.rstrip("/") + "/api/v4/geo/events"
    try:
        with http.httpx_client(
            ca_file=http.ca_for(url, secondary.ca_file),
            headers={"Authorization": f"Bearer {secondary.node_token}"},
        ) as client:
            response = client.get(url, params={"after": 0, "limit": 1})
    except httpx.HTTPError as exc:
        return failed(f"GET {url}: {type(exc).__name__}: {exc}")
    if response.status_code == 401:
        return failed(f"{url} refused the secondary's node token (HTTP 401)")
    if response.status_code != 200:
        return failed(f"GET {url}: HTTP {response.status_code}")
    return passed(url)


def worker(ctx: Context) -> Outcome:
    url = ctx.service_url(ctx.secondary_name)
    probe = health.probe_service(url)
    if not probe.ok:
        running = _worker_runs(ctx, ctx.secondary_name)
        return failed(f"{url}/-/health: {probe.detail} ({running})")
    return passed(url)


def _worker_runs(ctx: Context, node: str) -> str:
    """Whether the worker runs at all, in words: its process here, its container there."""
    if ctx.place.is_remote(node):
        name = ctx.place.names(node).service
        runs = ctx.place.service_running(node)
        return f"container {name} {'runs' if runs else 'is not running'}"
    state = services.state(ctx.node(node))
    return f"pid {state.pid} runs" if state.running else "no worker process runs"


def links(ctx: Context) -> Outcome:
    """Each node's link in force, with its round trip to the primary; a ✗ for a node cut
    off, or a shaped link whose relay does not run."""
    shown, cut, stopped = [], [], []
    for state in link.states(ctx.project, ctx.cfg):
        rtt = "" if state.round_trip_ms is None else f", round trip {state.round_trip_ms:.1f} ms"
        if state.is_primary:
            rtt = " (primary)"
        shown.append(f"{state.node}: {state.described}{rtt}")
        if state.shaped and state.relay_pid is None:
            stopped.append(state.node)
        elif state.shaping.down:
            cut.append(state.node)
    if cut:
        nodes = " and ".join(cut)
        return failed(
            f"{nodes} cut off from the other nodes (`geo.link --down`): " + "; ".join(shown),
            " ".join(f"`invoke geo.link --node {node} --up`" for node in cut),
        )
    if stopped:
        return failed(
            f"the link relay of {' and '.join(stopped)} does not run: its node reaches no other",
            "`invoke geo.setup` (starts the relay the record asks for)",
        )
    return passed("; ".join(shown))


def lag(ctx: Context) -> Outcome:
    url = ctx.service_url(ctx.secondary_name) + "/api/v4/geo/replication/status"
    token = {"Authorization": f"Bearer {ctx.secondary.node_token}"}  # needed beyond loopback
    try:
        with http.httpx_client(headers=token) as client:
            response = client.get(url)
        response.raise_for_status()
        status = StatusSnapshot.from_json(response.json())
    except (httpx.HTTPError, ValueError) as exc:
        return failed(f"GET {url}: {exc}")
    summary = ", ".join(f"{state} {status.counts.get(state, 0)}" for state in _STATES)
    if not status.event_feed.connected:
        return failed(f"the worker is not reading the primary's events: {status.event_feed.error}")
    lag = status.lag
    if lag is None or lag > MAX_LAG:
        return failed(f"{lag} events behind the primary (at most {MAX_LAG} is normal); {summary}")
    failures = sync_failures.failing(status.repositories)
    if failures:
        page = ctx.service_url(ctx.secondary_name) + "/admin/geo"
        reason = failures[0].last_sync_failure or ""
        return failed(
            sync_failures.describe(failures, summary, page), sync_failures.repair(reason, ctx.cfg)
        )
    return passed(f"{lag} events behind; {summary}")


_STATES = ("synced", "pending", "started", "failed")


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
