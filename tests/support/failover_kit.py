"""What the failover drills' tests share: a project set up on real nodes, removed at
teardown whatever happens, and pushes and lookups as the registry user.

`nodes_up` (conftest.py) sets a project up; every image is pushed with the
Registry API and looked for with a HEAD; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
from helpers import invoke, named_nodes_yml, ports_yml, unique_prefix, write_gdk_yml
from registry_login import RegistryLogin

from gdk_geo.project import Project
from gdk_geo.runtime import containers
from gdk_geo.settings import Settings
from testkit.images import Pusher, make_image
from testkit.net import free_ports, wait_for

REPO = "group/app"

SetUp = Callable[..., Project]


def remove_what_is_left(root: Path) -> None:
    """`geo.destroy`, then any container that still carries this project's label: what a
    set-up interrupted half-way created before the record knew of it."""
    invoke(root, "geo.destroy", "--yes", "--data")
    with contextlib.suppress(Exception):  # no engine: nothing of ours runs in one
        client = containers.engine()
        label = f"{containers.LABEL_PROJECT}={root}"
        for container in client.containers.list(all=True, filters={"label": label}):
            container.remove(force=True)


def nodes_up_in(tmp_path: Path) -> Iterator[SetUp]:
    """The `nodes_up` fixture's body (conftest.py): `nodes_up(letter)` (two nodes) or
    `nodes_up(gdk_yml=...)`, a project set up with `geo.setup`; removed at teardown, which
    pytest runs on failure and on Ctrl-C too."""
    started: list[Path] = []

    def set_up(letter: str = "t", *, gdk_yml: str | None = None, extra_yml: str = "") -> Project:
        text = gdk_yml or ports_yml(*free_ports(4), unique_prefix(letter))
        write_gdk_yml(tmp_path, text + extra_yml)
        started.append(tmp_path)  # before the set-up: it may stop half-way
        setup = invoke(tmp_path, "geo.setup")
        assert setup.returncode == 0, setup.stdout + setup.stderr
        return Project(tmp_path)

    yield set_up
    for root in started[:1]:
        remove_what_is_left(root)


def ca_file(project: Project, cfg: Settings) -> Path:
    return project.trust_dir(cfg) / "ca.crt"


class UserLogin(RegistryLogin):
    """The user's login for the async Pusher too: httpx reads each body before the flow
    sees it (the flow reads the token response)."""

    requires_response_body = True


def user_pusher(project: Project, cfg: Settings, node: str) -> Pusher:
    """A Registry API client of `node`, logged in as the project's user (auth is on)."""
    pusher = Pusher(cfg.node(node).registry_url, ca_file=ca_file(project, cfg))
    pusher.http.auth = UserLogin.of(project)
    return pusher


def digest_on(project: Project, cfg: Settings, node: str, tag: str) -> str | None:
    async def head() -> str | None:
        async with user_pusher(project, cfg, node) as pusher:
            return await pusher.digest_of(REPO, tag)

    return asyncio.run(head())


def push_tag(project: Project, cfg: Settings, tag: str) -> str:
    """A one-layer image of its own pushed to the primary, as the user; its digest."""
    image = make_image([os.urandom(64)])

    async def push() -> str:
        async with user_pusher(project, cfg, cfg.primary_name) as pusher:
            return await pusher.image(REPO, tag, image)

    return asyncio.run(push())


def everywhere(project: Project, tags: dict[str, str]) -> None:
    """Every node has every tag, at its digest (waits for the replication to get there)."""
    cfg = project.load()
    for node in cfg.node_names:
        for tag, digest in tags.items():
            wait_for(
                f"{REPO}:{tag} on {node}",
                lambda node=node, tag=tag, digest=digest: (
                    digest_on(project, cfg, node, tag) == digest
                ),
            )


def pushed_before(project: Project) -> dict[str, str]:
    """The tag `before`, pushed to the primary and replicated to every node."""
    tags = {"before": push_tag(project, project.load(), "before")}
    everywhere(project, tags)
    return tags


def refused_push(project: Project, cfg: Settings) -> httpx.Response:
    """Start a blob upload on the primary, as `docker push` does first."""
    tls = ssl.create_default_context(cafile=str(ca_file(project, cfg)))
    with httpx.Client(verify=tls, auth=RegistryLogin.of(project)) as http:
        return http.post(f"{cfg.primary.registry_url}/v2/{REPO}/blobs/uploads/")


def three_nodes(each_node: str = "") -> str:
    """Three named nodes on free ports, dc1 primary; `each_node` is added to every node."""
    return named_nodes_yml(("dc1", "dc2", "dc3"), unique_prefix("t"), each_node)


# Backfill and verification an hour apart: within a test only events replicate a new tag of
# a repository the secondary already has (backfill queues only what it lacks or has not
# checked for an interval).
EVENTS_ONLY = (
    "\n      registry_replication:\n        backfill_interval: 1h"
    "\n        verification_interval: 1h"
)


def replication_status(cfg: Settings, node: str) -> dict:
    response = httpx.get(f"{cfg.node(node).service_url}/api/v4/geo/replication/status")
    response.raise_for_status()
    return response.json()


def worker_totals(cfg: Settings, node: str) -> dict:
    return replication_status(cfg, node)["totals"]
