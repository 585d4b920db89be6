"""`geo.link`: the link between a node and the others, shaped on demand (`ops/link.py`)."""

from __future__ import annotations

from invoke import task

from gdk_geo.cli.console import out, user_errors
from gdk_geo.cli.tasks_support import check_node, project_of
from gdk_geo.errors import GdkGeoError

SHAPING_FLAGS = ("latency", "jitter", "loss", "rate")


@task(
    help={
        "node": "The node whose link to the others is shaped.",
        "latency": "Round trip added, as ping shows it: 80ms, 0.2s.",
        "jitter": "Spread of the latency: 10ms.",
        "loss": "Segments delayed by a retransmission, and connections refused: 1%.",
        "rate": "Bandwidth each way, as tc spells it: 50mbit (20mbps is megabytes).",
        "down": "Cut the node off: new connections fail, open ones stall (until --up).",
        "up": "End a --down: the link carries traffic again, with its shaping.",
        "reset": "No shaping: the relay stops and the direct URLs are rendered again.",
    }
)
@user_errors
def link(
    c, node=None, latency=None, jitter=None, loss=None, rate=None, down=False, up=False, reset=False
):
    """Shape node N's link to the others (latency, jitter, loss, rate, a partition), or
    show every link and its measured round trip to the primary."""
    from dataclasses import replace

    from gdk_geo.link.shaping import parse_duration_ms, parse_percent, parse_rate
    from gdk_geo.ops import link as link_ops
    from gdk_geo.ops import promote
    from gdk_geo.project import links

    check_node(c, node)
    project = project_of(c)
    cfg = project.load()
    given = {"latency": latency, "jitter": jitter, "loss": loss, "rate": rate}
    asked = [name for name, value in given.items() if value is not None] + [
        flag for flag, on in (("down", down), ("up", up), ("reset", reset)) if on
    ]
    if not asked:
        _show(link_ops.states(project, cfg))
        return
    if node is None:
        raise GdkGeoError(
            f"--{asked[0]} shapes one node's link: name it",
            where="invoke geo.link",
            fix=f"`invoke geo.link --node {cfg.secondaries[0].name} --{asked[0]} …`",
        )
    if (down and up) or (reset and len(asked) > 1):
        raise GdkGeoError(
            f"--{' and --'.join(asked)} ask for opposite things",
            where="invoke geo.link",
            fix="give one of --down, --up, --reset, or the shaping flags",
        )
    if reset:
        if link_ops.forget(project, cfg, node):
            promote.converge(project)  # the direct URLs, while the relay still carries
        link_ops.remove_relay(project, cfg, node)
        out.print(f"{node}: plain link (no relay)", markup=False)
        return
    shaping = link_ops.shaping_of(links.read(project.data_dir(cfg)), node)
    if latency is not None:
        shaping = replace(shaping, latency_ms=parse_duration_ms(latency, "--latency"))
    if jitter is not None:
        shaping = replace(shaping, jitter_ms=parse_duration_ms(jitter, "--jitter"))
    if loss is not None:
        shaping = replace(shaping, loss_percent=parse_percent(loss, "--loss"))
    if rate is not None:
        shaping = replace(shaping, rate_bits=parse_rate(rate, "--rate"))
    if down or up:
        shaping = replace(shaping, down=down)
    if link_ops.shape(project, cfg, node, shaping):
        promote.converge(project)  # the URLs through the new relay, and their services
    out.print(f"{node}: {shaping.describe()}", markup=False)


def _show(states) -> None:
    """Each node's link, its relay and the round trip to the primary, as a table."""
    from rich.table import Table

    table = Table(title="gdk-geo links", title_justify="left")
    for column in ("node", "link", "relay", "round trip to the primary"):
        table.add_column(column, no_wrap=True)
    for state in states:
        relay = (
            f"pid {state.relay_pid}"
            if state.relay_pid
            else ("not running" if state.shaped else "-")
        )
        rtt = "-" if state.round_trip_ms is None else f"{state.round_trip_ms:.1f} ms"
        if state.round_trip_ms is None and not state.is_primary:
            rtt = "no answer"
        table.add_row(state.node, state.described, relay, rtt)
    out.print(table)
