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

Over `ssh://`, docker-py runs the `ssh` on PATH (`use_ssh_client`: the user's keys, agent and
~/.ssh/config apply, as for the Docker CLI) as `ssh [-l user] [-p port] -- host 'docker
system dial-stdio'`, and speaks HTTP through its pipes. Three things follow. docker-py
loads its ssh transport only when paramiko is installed, even though `use_ssh_client` never
uses it: hence the `docker[ssh]` dependency. No timeout applies to those pipes, so the first
contact is bounded here, not by docker-py (`_first_contact`). And closing a connection whose
ssh has exited raised a broken pipe (`quiet_ssh_close`).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import docker.tls
import psutil

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


def quiet_ssh_close() -> None:
    """docker-py's `SSHSocket.close` (`use_ssh_client`) made quiet when ssh is gone already.

    Closing writes two newlines to ssh's stdin, then ends ssh. When the engine closed its
    end first, as it does after an exec's hijacked stream (`exec_run`: geo.check's probe of
    a site's tracking database), ssh may have exited by then, and that write raised
    BrokenPipeError out of `exec_run` after the output was read: about one `geo.check` in
    three failed with a traceback (docker/docker-py#3218, open). ssh having exited is what
    closing wants, so the write's error is dropped. Idempotent; without paramiko there is
    no ssh transport to mend (docker-py then says so itself).
    """
    try:
        from docker.transport import sshconn
    except ImportError:
        return
    if getattr(sshconn.SSHSocket.close, "quiet", False):
        return

    def close(self: sshconn.SSHSocket) -> None:
        if not self.proc or self.proc.stdin.closed:
            return
        with contextlib.suppress(OSError):  # BrokenPipeError: ssh has exited
            self.proc.stdin.write(b"\n\n")
            self.proc.stdin.flush()
        with contextlib.suppress(OSError):  # the flush it retries fails the same way
            self.proc.stdin.close()
        self.proc.terminate()

    close.quiet = True  # type: ignore[attr-defined]
    sshconn.SSHSocket.close = close  # type: ignore[method-assign]


def _first_contact(make: Callable[[], docker.DockerClient], seconds: float) -> docker.DockerClient:
    """`make()`, the client's creation and first ping over ssh://, within `seconds`.

    docker-py's `use_ssh_client` reads the HTTP answers from the pipes of the `ssh` it runs
    and applies no timeout to them: a host that drops packets held every task for ssh's own
    connect timeout (over two minutes), not PING_TIMEOUT. So the first contact runs in a
    thread; when it has not answered in time, the ssh processes it started are ended (which
    ends the thread too) and the engine does not answer. Later calls are not bounded: the
    host answered once, and a long `docker load` must not be cut.
    """
    me = psutil.Process()
    before = {child.pid for child in me.children(recursive=True)}
    outcome: list[docker.DockerClient | BaseException] = []

    def attempt() -> None:
        try:
            outcome.append(make())
        except BaseException as exc:  # handed to the caller's thread, which raises it
            outcome.append(exc)

    thread = threading.Thread(target=attempt, name="ssh engine first contact", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        for child in me.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if child.pid not in before and "dial-stdio" in " ".join(child.cmdline()):
                    child.terminate()
        thread.join(PING_TIMEOUT)
        raise TimeoutError(f"no answer through ssh in {seconds:g} s")
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def connect(node: Node) -> docker.DockerClient:
    """A client of `node`'s engine that answered a ping, or a clear error."""
    engine = node.engine
    if not engine.is_remote:
        return containers.engine()
    over_ssh = engine.host.startswith("ssh://")

    def make() -> docker.DockerClient:
        client = docker.DockerClient(
            base_url=engine.host,
            tls=_tls_config(engine) or False,
            timeout=PING_TIMEOUT,
            use_ssh_client=over_ssh,
        )
        client.ping()
        return client

    if over_ssh:
        quiet_ssh_close()
    try:
        client = _first_contact(make, PING_TIMEOUT) if over_ssh else make()
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
            self._clients[local] = containers.engine()
        return self._clients[local]

    def is_remote(self, node: str) -> bool:
        return self.cfg.node(node).engine.is_remote

    def remote_nodes(self) -> list[str]:
        return [name for name in self.cfg.node_names if self.is_remote(name)]
