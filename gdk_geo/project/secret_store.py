"""Generated secrets: created once with `secrets`, stored 0600, reused by every later run.

The notification secret authenticates the primary registry to the primary Geo service; the
node token authenticates the secondary worker to the primary's event API. `Secret` hides
its value from `repr`/`str` so it cannot leak into a log line or a traceback by accident.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gdk_geo.errors import GdkGeoError
from gdk_geo.fsutil import atomic_write
from gdk_geo.settings.values import masked


@dataclass(frozen=True)
class Secret:
    """A secret value that never prints itself."""

    value: str = field(repr=False)

    def __str__(self) -> str:
        return masked(self.value)


def load_or_create(path: Path, *, nbytes: int = 32) -> Secret:
    """The secret stored at `path`, generated (URL-safe, `nbytes` of entropy) when absent."""
    if path.exists():
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            os.chmod(path, 0o600)  # tighten a file someone loosened
        value = path.read_text().strip()
        if value:
            return Secret(value)
        raise GdkGeoError(
            f"{path} is empty",
            fix=f"delete {path} and rerun `invoke geo.reconfigure` to generate a new one",
        )
    value = secrets.token_urlsafe(nbytes)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    atomic_write(path, value + "\n", mode=0o600)
    return Secret(value)


@dataclass(frozen=True)
class ProjectSecrets:
    """Every secret a project needs."""

    notification_secret: Secret
    node_token: Secret
    registry_http_secret: Secret
    registry_password: Secret = Secret("")


def ensure_secrets(
    secrets_dir: Path, configured_notification_secret: str, configured_registry_password: str = ""
) -> ProjectSecrets:
    """Load or create the project's secrets; a secret set in gdk.yml wins over a generated one."""
    return _secrets(
        secrets_dir, configured_notification_secret, configured_registry_password, load_or_create
    )


def stored_secrets(
    secrets_dir: Path, configured_notification_secret: str, configured_registry_password: str = ""
) -> ProjectSecrets | None:
    """The project's secrets as `ensure_secrets` would return them, without generating any:
    None when one has never been generated (the project was never rendered here)."""
    try:
        return _secrets(
            secrets_dir, configured_notification_secret, configured_registry_password, _stored
        )
    except (OSError, GdkGeoError):
        return None


def _stored(path: Path) -> Secret:
    value = path.read_text().strip()
    if not value:
        raise GdkGeoError(f"{path} is empty")
    return Secret(value)


def _secrets(
    secrets_dir: Path,
    configured_notification_secret: str,
    configured_registry_password: str,
    read: Callable[[Path], Secret],
) -> ProjectSecrets:
    """Every secret: the configured value where gdk.yml sets one, else `read` from its file."""

    def secret(name: str, configured: str = "") -> Secret:
        return Secret(configured) if configured else read(secrets_dir / name)

    return ProjectSecrets(
        notification_secret=secret("notification_secret", configured_notification_secret),
        node_token=secret("node_token"),
        registry_http_secret=secret("registry_http_secret"),
        registry_password=secret("registry_password", configured_registry_password),
    )
