"""Each node's Docker engine: the CLI's own, or the one its `docker.host` names.

A node whose `docker.host` is empty runs on the engine the CLI finds by itself
($DOCKER_HOST, the default socket), as every node did before nodes could be apart. A node
with a `docker.host` runs on that engine, spelled as DOCKER_HOST spells it: `unix://` for a
socket, `tcp://` (with TLS when the node's `docker.tls_verify` or $DOCKER_TLS_VERIFY asks
for it, with the certificates of `docker.cert_path` or $DOCKER_CERT_PATH), `ssh://`
(through the system's `ssh`, as the Docker CLI does). One client per engine is kept for a
task, so three nodes on one engine share one connection.

An engine that does not answer is the user's to fix: the error names the node, the
`docker.host` key that points at it, and what to do, never a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import docker.tls

from gdk_geo.errors import GdkGeoError
from gdk_geo.runtime import containers
from gdk_geo.settings import Settings
from gdk_geo.settings.topology import Engine, Node

# How long a remote engine may take to answer one API call: a slow link, not a dead one.
REMOTE_TIMEOUT = 120
# How long the first ping may take: an engine whose host is gone is an error in seconds,
# not after every task's first call waited out REMOTE_TIMEOUT.
PING_TIMEOUT = 10


def _tls_config(engine: Engine) -> docker.tls.TLSConfig | None:
    """TLS to a tcp:// engine, when the node or the environment asks for it."""
    verify = engine.tls_verify or os.environ.get("DOCKER_TLS_VERIFY", "") not in ("", "0")
    if not verify or not engine.host.startswith("tcp://"):
        return None
    where = Path(engine.cert_path or os.environ.get("DOCKER_CERT_PATH") or Path.home() / ".docker")
    return docker.tls.TLSConfig(
        client_cert=(str(where / "cert.pem"), str(where / "key.pem")),
        ca_cert=str(where / "ca.pem"),
        verify=True,
    )


def _unanswered(node: Node, exc: Exception) -> GdkGeoError:
    """The error for a node's engine that did not answer: which node, which key, what to do."""
    key = f"{node.key or 'geo.' + node.name}.docker.host"
    return GdkGeoError(
        f"the Docker engine of node {node.name} ({node.engine.host}) does not answer: {exc}",
        where=f"gdk.yml: {key}",
        fix=f"start that engine or make it reachable from here, or correct `{key}` "
        f"(`invoke geo.config.set {key} <DOCKER_HOST>`), then run the command again",
    )


def connect(node: Node) -> docker.DockerClient:
    """A client of `node`'s engine that answered a ping, or a clear error."""
    engine = node.engine
    if not engine.is_remote:
        return containers.engine()
    try:
        client = docker.DockerClient(
            base_url=engine.host,
            tls=_tls_config(engine) or False,
            timeout=PING_TIMEOUT,
            use_ssh_client=engine.host.startswith("ssh://"),
        )
        client.ping()
        client.api.timeout = REMOTE_TIMEOUT
    except (docker.errors.DockerException, OSError) as exc:
        raise _unanswered(node, exc) from None
    return client


@dataclass
class Engines:
    """The engines of a project's nodes, each connected once, when first asked for."""

    cfg: Settings
    _clients: dict[Engine, docker.DockerClient] = field(default_factory=dict)

    def of(self, node: str) -> docker.DockerClient:
        """Node `node`'s engine; a clear error when it does not answer."""
        described = self.cfg.node(node)
        engine = described.engine
        if engine not in self._clients:
            self._clients[engine] = connect(described)
        return self._clients[engine]

    @property
    def local(self) -> docker.DockerClient:
        """The CLI's own engine: where images are built before they travel."""
        local = Engine()
        if local not in self._clients:
            self._clients[local] = connect(Node("local", False, 0, 0, "localhost"))
        return self._clients[local]

    def is_remote(self, node: str) -> bool:
        return self.cfg.node(node).engine.is_remote

    def remote_nodes(self) -> list[str]:
        return [name for name in self.cfg.node_names if self.is_remote(name)]
