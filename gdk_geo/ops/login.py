"""`geo.login`: log the Docker CLI in to every registry as the project's registry user.

The password is written to `docker login --password-stdin`, never put on a command line
(where `ps` and shell history would show it). Docker keeps the credentials in its own
store (`~/.docker/config.json` or a credential helper), as after a manual login.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

from gdk_geo.errors import GdkGeoError
from gdk_geo.project import Project
from gdk_geo.settings import Settings

LOGIN_TIMEOUT = 60.0


@dataclass(frozen=True)
class Login:
    """One registry the CLI is now logged in to."""

    node: str
    registry: str  # host:port, as `docker login` and image references name it
    username: str


def registry_host(cfg: Settings, node: str) -> str:
    return f"{cfg.hostname}:{cfg.node(node).registry_port}"


def password(project: Project, cfg: Settings) -> str:
    """The registry user's password: gdk.yml's, else the generated one under the secrets."""
    if cfg.registry.auth.password:
        return cfg.registry.auth.password
    path = project.secrets_dir(cfg) / "registry_password"
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
    secret = project.secrets_dir(cfg) / "registry_password"
    source = "gdk.yml (registry.auth.password)" if cfg.registry.auth.password else str(secret)
    return [
        f"Log in as {cfg.registry.auth.username} (password in {source}):",
        "  invoke geo.login",
    ]


def docker_login(project: Project) -> list[Login]:
    """`docker login` to the primary, then the secondary; the first refusal is an error."""
    cfg = project.load()
    if not cfg.registry.auth_enabled:
        raise GdkGeoError(
            "registry.auth_enabled is false: the registries take anonymous pushes and pulls",
            where="gdk.yml: registry.auth_enabled",
            fix="nothing to log in to; set it to true and run `invoke geo.restart` to use tokens",
        )
    docker = shutil.which("docker")
    if docker is None:
        raise GdkGeoError(
            "the docker command is not installed",
            fix="install the Docker CLI, then run `invoke geo.login` again",
        )
    secret, user = password(project, cfg), cfg.registry.auth.username
    done = []
    for node in cfg.node_names:
        host = registry_host(cfg, node)
        try:
            result = subprocess.run(
                [docker, "login", "--username", user, "--password-stdin", host],
                input=secret + "\n",
                capture_output=True,
                text=True,
                timeout=LOGIN_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            raise GdkGeoError(
                f"docker login {host} did not finish within {LOGIN_TIMEOUT:.0f}s",
                fix="`invoke geo.check` tells whether the registry and its realm answer",
            ) from None
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().replace(secret, "(password)")
            raise GdkGeoError(
                f"docker login {host} failed: {said}",
                where=node,
                fix="`invoke geo.check` tells whether the registry and its realm answer",
            )
        done.append(Login(node, host, user))
    return done
