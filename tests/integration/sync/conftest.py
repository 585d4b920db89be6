"""Two (well, five) bare registries of the offline image, for the replication tests.

pytest-docker runs `docker-compose.yml` beside this file: a plain primary and secondary, a
TLS pair with a certificate made here, and a primary that one test stops. Every registry
uses host networking on 127.0.0.1 at a free port passed through the environment. The image
is ensured (built offline if need be) before `up`, and `down` runs even when `up` failed.
"""

from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from gdk_geo.runtime.image import ensure_registry_image
from testkit.net import free_port, wait_for

HERE = Path(__file__).resolve().parent
COMPOSE = "docker-compose"
SERVICES = ("primary", "secondary", "doomed", "primary-tls", "secondary-tls")


@dataclass(frozen=True)
class Registries:
    """Where the test registries listen, and how to reach their containers."""

    primary: str
    secondary: str
    doomed: str
    primary_tls: str
    secondary_tls: str
    ca_file: Path
    project: str
    docker: object

    def container(self, service: str):  # -> docker.models.containers.Container
        """The container of one compose service (for its logs, or to stop it)."""
        found = self.docker.containers.list(  # type: ignore[attr-defined]
            all=True,
            filters={
                "label": [
                    f"com.docker.compose.project={self.project}",
                    f"com.docker.compose.service={service}",
                ]
            },
        )
        assert len(found) == 1, f"expected one {service} container, found {found}"
        return found[0]

    def logs(self, service: str) -> str:
        return self.container(service).logs().decode(errors="replace")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    """Compose v1 is what this machine has (pytest-docker 3 defaults to `docker compose`)."""
    return COMPOSE


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(HERE / "docker-compose.yml")


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    return f"gdkgeosync{os.getpid()}{uuid.uuid4().hex[:6]}"


@pytest.fixture(scope="session")
def sync_environment(
    docker_client: object,
    docker_compose_project_name: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, str]]:
    """Image, certificates and ports, exported for compose; `down -v` on the way out, always."""
    for tool in (COMPOSE, "skopeo"):
        if shutil.which(tool) is None:
            pytest.skip(f"`{tool}` is not installed: install it to run these tests")
    from registry_kit import make_certificates

    image = ensure_registry_image(
        docker_client, "registry:2", Path("/usr/bin/docker-registry"), progress=lambda _: None
    )
    certs = tmp_path_factory.mktemp("sync-certs")
    make_certificates(certs)
    certs.chmod(0o755)
    values = {
        "GDK_GEO_SYNC_IMAGE": image.name,
        "GDK_GEO_SYNC_CERTS": str(certs),
        **{f"GDK_GEO_SYNC_{s.upper().replace('-', '_')}_PORT": str(free_port()) for s in SERVICES},
    }
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield values
    finally:
        subprocess.run(
            [
                COMPOSE,
                "-f",
                str(HERE / "docker-compose.yml"),
                "-p",
                docker_compose_project_name,
                "down",
                "-v",
                "-t",
                "1",
            ],
            capture_output=True,
            check=False,
        )
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def docker_setup(sync_environment: dict[str, str]) -> list[str]:
    """`up -d` (v1 has no `--wait`; `registries` waits for the API instead)."""
    return ["up -d"]


@pytest.fixture(scope="session")
def docker_cleanup() -> list[str]:
    return ["down -v -t 1"]


@pytest.fixture(scope="session")
def registries(
    sync_environment: dict[str, str],
    docker_services: object,
    docker_compose_project_name: str,
    docker_client: object,
) -> Registries:
    """The running registries, each answering `GET /v2/`."""
    env = sync_environment

    def url(service: str, scheme: str = "http") -> str:
        port = env[f"GDK_GEO_SYNC_{service.upper().replace('-', '_')}_PORT"]
        return f"{scheme}://127.0.0.1:{port}"

    found = Registries(
        primary=url("primary"),
        secondary=url("secondary"),
        doomed=url("doomed"),
        primary_tls=url("primary-tls", "https"),
        secondary_tls=url("secondary-tls", "https"),
        ca_file=Path(env["GDK_GEO_SYNC_CERTS"]) / "ca.crt",
        project=docker_compose_project_name,
        docker=docker_client,
    )
    for base in (
        found.primary,
        found.secondary,
        found.doomed,
        found.primary_tls,
        found.secondary_tls,
    ):
        _wait_for_registry(base, found.ca_file)
    return found


def _wait_for_registry(base: str, ca_file: Path) -> None:
    context = ssl.create_default_context(cafile=str(ca_file))
    wait_for(
        f"the registry at {base}",
        lambda: httpx.get(f"{base}/v2/", verify=context, timeout=2).status_code == 200,
        timeout=30.0,
    )
