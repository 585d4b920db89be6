"""`geo.verify`: every secondary (or the one `--node` names) compared with the primary.

Each secondary has its own registry, worker and tracking database, so each is verified
on its own, by its own worker when that worker reads the primary registry itself, and
printed under its name. With one secondary the output is what it always was. The exit
code is the worst any node gave: 1 when a node differs, 2 when a registry cannot be read,
3 when a node's worker stopped answering mid-pass (that node's one line and fix are
printed, and the other nodes are still verified).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from gdk_geo.cli import passes
from gdk_geo.cli.console import TaskEnded, err, out
from gdk_geo.node import settings as node_settings
from gdk_geo.project import Project, links
from gdk_geo.settings import Settings
from gdk_geo.settings.topology import same_registry


@dataclass
class NodeVerification:
    """What verifying one secondary found: its diffs as the worker reports them, what was
    queued for sync, and the exit code it alone would give."""

    node: str
    diffs: list[dict] = field(default_factory=list)
    queued: list[str] = field(default_factory=list)
    code: int = 0

    @property
    def different(self) -> list[dict]:
        return [passes.difference(d) for d in self.diffs if not d["clean"]]

    def as_json(self) -> dict:
        """The node's result as `geo.verify --json` has always printed it."""
        return {
            "repositories": len(self.diffs),
            "clean": not self.different and not self.code,
            "differences": self.different,
            "queued_for_sync": self.queued,
        }


def secondaries_to_verify(cfg: Settings, node: str | None) -> list[str]:
    """The secondaries `--node` asks for (every one when None); a primary is refused."""
    if node is None:
        return [n.name for n in cfg.secondaries]
    return [passes.secondary_name(cfg, node)]


def primary_registry_url(project: Project, cfg: Settings) -> str:
    """The primary registry itself, as its own node's gitlab.yml names it: what each
    secondary is compared with, whatever its `primary_api_url` says."""
    primary = project.node(cfg, cfg.primary_name)
    return node_settings.load_primary(primary.gitlab_yml).registry_api_url


def _reads_primary(project: Project, cfg: Settings, node: str, primary: str, api_url: str) -> bool:
    """Whether `api_url` (what node `node`'s worker syncs from) is the primary registry:
    its own URL, or the way to it through the node's shaped link (`geo.link`)."""
    shaped = links.read(project.data_dir(cfg))
    through = links.reach(cfg, shaped, node, cfg.primary_name, "registry")
    return same_registry(primary, api_url) or api_url.rstrip("/") == through


def verify_node(project: Project, cfg: Settings, node: str, primary: str) -> NodeVerification:
    """Verify one secondary: by its worker when the worker reads `primary`, else here."""
    settings = passes.secondary_settings(project, cfg, node)
    found = NodeVerification(node)
    nodes = {"primary": cfg.primary_name, "secondary": node}  # each side's node, for fixes
    diffs = None
    if _reads_primary(project, cfg, node, primary, settings.primary_api_url):
        elsewhere = passes.engine_elsewhere(cfg, node)
        diffs = passes.through_worker(settings, "reverify", {}, "verified", nodes, elsewhere)
    else:  # the worker's primary is not the primary registry: it cannot vouch for it
        err.print(
            f"note: the Geo worker of {node} reads {settings.primary_api_url}, not the "
            f"primary registry {primary}: verifying in this process",
            markup=False,
            soft_wrap=True,
        )
    if diffs is None:
        diffs, found.queued = passes.verify_in_process(settings, primary, nodes)
    else:
        found.queued = [d["repository"] for d in diffs if not d["clean"]]
    found.diffs = diffs
    found.code = 1 if found.different else 0
    return found


def _verify_or_unreadable(
    project: Project, cfg: Settings, node: str, primary: str
) -> NodeVerification:
    """`verify_node`, where a registry that cannot be read (its line and fix printed
    already) is this node's exit 2 instead of the end of the task."""
    try:
        return verify_node(project, cfg, node, primary)
    except TaskEnded as ended:
        return NodeVerification(node, code=ended.code)


def _print_node(found: NodeVerification, named: bool) -> None:
    for d in found.different:
        passes.print_difference(d)
    if found.code >= 2:  # unreadable (2) or the worker stopped (3): said on stderr already
        return
    prefix = f"{found.node}: " if named else ""
    out.print(f"{prefix}{len(found.diffs)} repositories compared, {len(found.different)} differ")
    if found.queued:
        out.print(
            f"queued for sync{' on ' + found.node if named else ''}: {', '.join(found.queued)}. "
            "The worker repairs them within 30 s while it runs; "
            f"`invoke geo.sync --all{' --node ' + found.node if named else ''}` repairs them now",
            markup=False,
            soft_wrap=True,
        )


def verify(project: Project, node: str | None = None, as_json: bool = False) -> int:
    """Verify the secondaries, print per node, and return the exit code (0 to 3)."""
    cfg = project.load()
    names = secondaries_to_verify(cfg, node)
    primary = primary_registry_url(project, cfg)
    named = len(names) > 1
    results = []
    for name in names:
        if named and not as_json:
            out.print(f"{name} (secondary of {cfg.primary_name}):", markup=False)
        results.append(_verify_or_unreadable(project, cfg, name, primary))
        if not as_json:
            _print_node(results[-1], named)
    if as_json and not named and results[0].code >= 2:
        return results[0].code  # its line and fix are on stderr, as without --json
    if as_json:
        by_node = {found.node: found.as_json() for found in results}
        single = results[0].as_json() if not named else None
        document = single or {"clean": all(r["clean"] for r in by_node.values()), "nodes": by_node}
        print(json.dumps(document, indent=2))
    return max(found.code for found in results)
