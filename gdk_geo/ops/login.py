"""`geo.login [--client …]`: log a client in to every registry as the project's registry user.

Docker, podman and skopeo each keep a login: the password is written to their
`login --password-stdin`, never put on a command line (where `ps` and shell history would
show it). Docker keeps it in its own store (`~/.docker/config.json` or a credential
helper); podman and skopeo share one auth file (`$REGISTRY_AUTH_FILE`, else
`$XDG_RUNTIME_DIR/containers/auth.json`). containerd keeps no login: `ctr` takes the user
on every command, so for it the task prints the command lines to use, with the shell reading
the password from its file (`--user "root:$(cat …)"`), never the password itself.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.node import exposure
from gdk_geo.pki import trust
from gdk_geo.project import Project
from gdk_geo.settings import Settings

LOGIN_TIMEOUT = 60.0
CHECK_FIX = "`invoke geo.check` tells whether the registry and its realm answer"
# containerd's own default socket, and the one of the containerd a Docker engine runs for
# itself when it was started without a system containerd (Debian's docker.io, CI here).
CONTAINERD_SOCKET = "/run/containerd/containerd.sock"
DOCKERD_CONTAINERD_SOCKET = "/var/run/docker/containerd/containerd.sock"
# Where Docker's daemon finds the CA of a registry it verifies, one directory per host:port.
DOCKER_CERTS_D = Path("/etc/docker/certs.d")


@dataclass(frozen=True)
class Client:
    """A client `geo.login` knows: its command, the package that brings it, and whether
    it takes `--cert-dir` (the trust directory) at login."""

    name: str
    command: str
    package: str
    cert_dir: bool = False


CLIENTS: dict[str, Client] = {
    "docker": Client("docker", "docker", "docker.io (Debian), or Docker's docker-ce-cli"),
    "podman": Client("podman", "podman", "podman", cert_dir=True),
    "containerd": Client("containerd", "ctr", "containerd (it brings ctr)"),
    "skopeo": Client("skopeo", "skopeo", "skopeo", cert_dir=True),
}


@dataclass(frozen=True)
class Login:
    """One registry the client is now logged in to."""

    node: str
    registry: str  # host:port, as `docker login` and image references name it
    username: str


@dataclass
class LoginReport:
    """What `geo.login` did for one client: logins made, or (containerd) lines to run."""

    client: str
    logins: list[Login] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def registry_host(cfg: Settings, node: str) -> str:
    return cfg.node(node).registry_address


def password_file(project: Project, cfg: Settings) -> Path:
    return project.secrets_dir(cfg) / "registry_password"


def password(project: Project, cfg: Settings) -> str:
    """The registry user's password: gdk.yml's, else the generated one under the secrets."""
    if cfg.registry.auth.password:
        return cfg.registry.auth.password
    path = password_file(project, cfg)
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        raise GdkGeoError(
            "no registry password has been generated yet",
            where=str(path),
            fix="run `invoke geo.setup` first (it generates the password)",
        ) from None


def login_hint(project: Project, cfg: Settings) -> list[str]:
    """What `geo.setup` prints: how to log in, with the password read from its file."""
    if not cfg.registry.auth_enabled:
        return []
    source = (
        "gdk.yml (registry.auth.password)"
        if cfg.registry.auth.password
        else str(password_file(project, cfg))
    )
    return [
        f"Log in as {cfg.registry.auth.username} (password in {source}):",
        "  invoke geo.login    (--client podman, skopeo or containerd for the others)",
    ]


def client_named(name: str) -> Client:
    """The client called `name`; an unknown name is an error that lists the known ones."""
    try:
        return CLIENTS[name]
    except KeyError:
        raise GdkGeoError(
            f"unknown client {name!r}",
            where="invoke geo.login --client",
            fix=f"use one of: {', '.join(CLIENTS)}",
        ) from None


def find_command(client: Client) -> str:
    """The client's command on PATH; missing, an error naming the package to install."""
    found = shutil.which(client.command)
    if found is None:
        raise GdkGeoError(
            f"the {client.command} command is not installed (needed for --client {client.name})",
            fix=f"install {client.package}, then run `invoke geo.login --client {client.name}`"
            " again",
        )
    return found


def login(project: Project, client: str = "docker") -> LoginReport:
    """Log `client` in to every registry, primary first; the first refusal is an error.
    For containerd, which keeps no login, the report holds the command lines instead."""
    chosen = client_named(client)
    cfg = project.load()
    if not cfg.registry.auth_enabled:
        raise GdkGeoError(
            "registry.auth_enabled is false: the registries take anonymous pushes and pulls",
            where="gdk.yml: registry.auth_enabled",
            fix="nothing to log in to; set it to true and run `invoke geo.restart` to use tokens",
        )
    command = find_command(chosen)
    if chosen.name == "containerd":
        return containerd_report(project, cfg)
    report = LoginReport(chosen.name)
    secret, user = password(project, cfg), cfg.registry.auth.username
    if chosen.name == "docker":
        report.notes += trust_docker_daemon(project, cfg)
    for node in cfg.node_names:
        host = registry_host(cfg, node)
        argv = [command, "login", "--username", user, "--password-stdin"]
        if chosen.cert_dir:
            argv += ["--cert-dir", str(project.trust_dir(cfg))]
        _run_login(chosen.name, [*argv, host], secret, node)
        report.logins.append(Login(node, host, user))
    if chosen.cert_dir:
        report.notes.append(
            f"{chosen.name} verifies each registry with the CA in {project.trust_dir(cfg)}: "
            "pass it as --cert-dir (docs/clients.md)"
        )
    return report


def trust_docker_daemon(project: Project, cfg: Settings) -> list[str]:
    """Give Docker's daemon the CA of every registry it verifies: those off loopback (it
    takes a loopback registry as insecure and verifies nothing). The daemon reads
    `/etc/docker/certs.d/<host:port>/ca.crt` on each connection; the file is written when
    this user may, else the error says the commands that do it."""
    notes = []
    ca = (project.trust_dir(cfg) / trust.CA_FILE).read_bytes()
    for node in cfg.node_names:
        described = cfg.node(node)
        if described.hostname == "localhost" or exposure.is_loopback(described.hostname):
            continue  # Docker's daemon takes these as insecure
        target = DOCKER_CERTS_D / described.registry_address / trust.CA_FILE
        if target.exists() and target.read_bytes() == ca:
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(target, ca, mode=0o644)
        except OSError as exc:
            source = project.trust_dir(cfg) / trust.DOCKER_DIR / described.registry_address
            raise GdkGeoError(
                f"Docker's daemon cannot verify {described.registry_address} without the "
                f"project's CA in {target.parent}, and it could not be written ({exc.strerror})",
                where=node,
                fix=f"`sudo mkdir -p {target.parent} && sudo cp {source}/{trust.CA_FILE} "
                f"{target}`, then `invoke geo.login` again",
            ) from None
        notes.append(f"Docker's daemon verifies {described.registry_address} with {target}")
    return notes


def _run_login(client: str, argv: list[str], secret: str, node: str) -> None:
    """One `<client> login --password-stdin`; what it says on failure, the password masked."""
    host = argv[-1]
    try:
        result = subprocess.run(
            argv,
            input=secret + "\n",
            capture_output=True,
            text=True,
            timeout=LOGIN_TIMEOUT,
        )
    except subprocess.TimeoutExpired:
        raise GdkGeoError(
            f"{client} login {host} did not finish within {LOGIN_TIMEOUT:.0f}s",
            where=node,
            fix=CHECK_FIX,
        ) from None
    if result.returncode != 0:
        said = (result.stderr or result.stdout).strip().replace(secret, "(password)")
        raise GdkGeoError(f"{client} login {host} failed: {said}", where=node, fix=CHECK_FIX)


def containerd_address() -> str | None:
    """The socket `ctr` must be told about, or None when its default is right: a set
    `$CONTAINERD_ADDRESS` is already right; a missing default socket beside the socket of
    the containerd a Docker engine runs for itself means that one."""
    if os.environ.get("CONTAINERD_ADDRESS") or Path(CONTAINERD_SOCKET).exists():
        return None
    return DOCKERD_CONTAINERD_SOCKET if Path(DOCKERD_CONTAINERD_SOCKET).exists() else None


def containerd_user(project: Project, cfg: Settings) -> str:
    """ctr's `--user` argument: the shell reads the generated password from its file when
    the line runs; a password set in gdk.yml is never printed, so ctr asks for it."""
    user = cfg.registry.auth.username
    if cfg.registry.auth.password:
        return shlex.quote(user)
    return f'"{user}:$(cat {shlex.quote(str(password_file(project, cfg)))})"'


def containerd_report(project: Project, cfg: Settings) -> LoginReport:
    """The ctr command lines for every registry: `--hosts-dir` names the hosts.toml files
    (HTTPS and the local CA; without them ctr speaks plain HTTP to `localhost` and gets
    `400 Bad Request`), `--user` the registry user."""
    report = LoginReport("containerd")
    report.notes.append(
        "containerd keeps no login: each ctr command takes --user (the shell reads the "
        "password from its file; it is never printed)"
    )
    if cfg.registry.auth.password:
        report.notes.append("ctr asks for the password: registry.auth.password in gdk.yml")
    address = containerd_address()
    if address:
        report.commands.append(f"export CONTAINERD_ADDRESS={address}")
    flags = f"--hosts-dir {shlex.quote(str(project.trust_dir(cfg) / 'hosts.d'))} --user "
    flags += containerd_user(project, cfg)
    image = "group/app:v1"
    report.commands.append(f"ctr images push {flags} {cfg.primary.registry_address}/{image}")
    for node in cfg.node_names:
        report.commands.append(f"ctr images pull {flags} {cfg.node(node).registry_address}/{image}")
    return report
