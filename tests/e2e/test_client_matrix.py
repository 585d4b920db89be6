"""Every client a Geo developer uses, over TLS and token auth (issue #28): the Docker CLI,
podman, skopeo and containerd's `ctr`, each against one project with two nodes.

For each client: `invoke geo.login --client <name>`; a push of a new image to the primary;
a pull of the same digest from the secondary once it has replicated (the test polls the
secondary's manifest); a push to the secondary, which must be refused at once; and a pull
that outlasts its token. A client that cannot run here is skipped, saying why
(tests/client_rig.py has how each one is kept from leaving state behind).

The token lifetime is 2 s (`registry.auth.token_expire_delay`), and the long pull goes
through a proxy that passes 16 MiB/s from the secondary registry, so pulling the 64 MiB
layer takes at least 4 s: twice the token's life. Distribution checks a token when a
request starts, and accepts one up to 60 s past its `exp` (its fixed leeway for clock
skew, docs/token-auth.md), so what this proves is that a layer stream started under a
token finishes after the token expired, and that no client trips over a token whose
`expires_in` is shorter than its pull; a request started more than 60 s after `exp` is
refused, which the registry tests cover with tokens made to be expired.
"""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from client_rig import DRIVERS, REFUSED, ContainerdDriver, Driver
from helpers import REPO_ROOT, ports_yml, set_up, unique_prefix
from registry_login import RegistryLogin, creds_argument

from gdk_geo.project import Project
from testkit.images import ACCEPT_ALL, make_image, skopeo_push, tar_layer, write_oci_layout
from testkit.net import ThrottledProxy, free_ports, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TOKEN_LIFETIME = 2.0
BIG = 64 * 1024 * 1024
RATE = 16 * 1024 * 1024  # bytes a second through the proxy: the big pull takes ≥ 4 s
DOCS = REPO_ROOT / "README.md"
BEGIN, END = "<!-- ctr-lines:begin -->", "<!-- ctr-lines:end -->"
FENCE = re.compile(r"^```[a-z]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    yml = ports_yml(*free_ports(4), unique_prefix("m"))
    yml += f"registry:\n  auth:\n    token_expire_delay: {TOKEN_LIFETIME:.0f}s\n"
    with set_up(tmp_path_factory.mktemp("matrix"), yml) as project:
        yield project


@pytest.fixture(params=list(DRIVERS))
def client(request, project: Project, tmp_path: Path) -> Iterator[Driver]:
    driver = DRIVERS[request.param](project, tmp_path / request.param)
    reason = driver.unavailable()
    if reason:
        pytest.skip(f"{request.param} cannot run here: {reason}")
    try:
        yield driver
    finally:
        driver.cleanup()


def _manifest_digest(project: Project, node: str, repository: str, tag: str) -> str | None:
    """The digest `node`'s registry serves for `repository:tag` now (None while it has none),
    read as the registry user, verified with the project's CA."""
    cfg = project.load()
    context = ssl.create_default_context(cafile=str(project.trust_dir(cfg) / "ca.crt"))
    with httpx.Client(verify=context, auth=RegistryLogin.of(project), timeout=30) as http:
        answer = http.head(
            f"{cfg.node(node).registry_url}/v2/{repository}/manifests/{tag}",
            headers={"Accept": ACCEPT_ALL},
        )
    return answer.headers.get("Docker-Content-Digest") if answer.status_code == 200 else None


def wait_replicated(project: Project, node: str, repository: str, tag: str, digest: str) -> None:
    """Until `node` serves `repository:tag` at `digest` (the worker syncs on the push's
    event; this polls the secondary's manifest instead of guessing a time)."""
    wait_for(
        f"{node} to serve {repository}:{tag} at {digest}",
        lambda: _manifest_digest(project, node, repository, tag) == digest,
    )


def test_login_push_pull_the_same_digest_and_a_refused_push(
    client: Driver, project: Project
) -> None:
    cfg = project.load()
    login = client.geo_login()
    assert login.returncode == 0, login.stdout + login.stderr
    assert client.password not in login.stdout + login.stderr
    repository = f"matrix/{client.name}-{uuid.uuid4().hex[:8]}"
    digest = client.push_new(f"{cfg.primary.registry_address}/{repository}:v1")
    for secondary in cfg.secondaries:
        wait_replicated(project, secondary.name, repository, "v1", digest)
        source = f"{secondary.registry_address}/{repository}@{digest}"
        client.pull(source)
        started = time.monotonic()
        refused = client.push_as(source, f"{secondary.registry_address}/{repository}-copy:v1")
        took = time.monotonic() - started
        said = refused.stdout + refused.stderr
        assert refused.returncode != 0, said
        assert REFUSED.search(said), said
        print(f"{client.name}: push to {secondary.name} refused in {took:.2f} s: {said[-300:]}")


@pytest.fixture(scope="module")
def big_image(project: Project, tmp_path_factory) -> tuple[str, str]:
    """(repository, digest) of a one-layer image of 64 MiB of random bytes (in a tar, so
    the clients that unpack can), pushed with skopeo and replicated to every secondary."""
    cfg = project.load()
    image = make_image([tar_layer({"big.bin": os.urandom(BIG)})])
    layout = write_oci_layout(tmp_path_factory.mktemp("big") / "layout", "v1", image)
    repository = "matrix/big"
    skopeo_push(
        layout,
        "v1",
        f"{cfg.primary.registry_address}/{repository}:v1",
        f"--dest-cert-dir={project.trust_dir(cfg)}",
        "--dest-creds",
        creds_argument(project),
    )
    for secondary in cfg.secondaries:
        wait_replicated(project, secondary.name, repository, "v1", image.digest)
    return repository, image.digest


def test_a_pull_that_outlasts_its_token(
    client: Driver, project: Project, big_image: tuple[str, str]
) -> None:
    cfg = project.load()
    repository, digest = big_image
    secondary = cfg.secondaries[0]
    realm = f"{secondary.service_url}/jwt/auth"
    token = httpx.get(
        realm,
        params={"service": "container_registry", "scope": f"repository:{repository}:pull"},
        auth=(client.user, client.password),
        timeout=30,
    ).json()
    assert token["expires_in"] <= TOKEN_LIFETIME, token["expires_in"]
    login = client.geo_login()
    assert login.returncode == 0, login.stdout + login.stderr
    with ThrottledProxy(secondary.registry_port, RATE) as proxy:
        address = f"{cfg.hostname}:{proxy.port}"
        client.login_to(address)
        started = time.monotonic()
        client.pull(f"{address}/{repository}@{digest}")
        took = time.monotonic() - started
    assert proxy.bytes_down >= BIG
    assert took > 2 * TOKEN_LIFETIME, took
    print(
        f"{client.name}: {BIG >> 20} MiB pulled in {took:.1f} s with {TOKEN_LIFETIME:.0f} s tokens"
    )


def ctr_lines(text: str) -> str:
    """The shell lines between the ctr markers of README.md: its fenced blocks."""
    _, begin, rest = text.partition(BEGIN)
    section, end, _ = rest.partition(END)
    assert begin and end, f"README.md must hold {BEGIN} ... {END}"
    blocks = FENCE.findall(section)
    assert blocks, "the ctr section of README.md holds no fenced block"
    return "".join(blocks)


def test_the_readmes_ctr_lines_pull_from_the_secondary(project: Project, tmp_path: Path) -> None:
    """The lines run verbatim by bash in the project's directory, as a user would after
    `make run`, with one substitution: the default registry ports (5000, the primary's;
    5001, the secondary's, after a `:`) become the test project's. The relative paths in
    them (`.gdk-geo/trust/hosts.d`, `.gdk-geo/secrets/registry_password`) are the test
    project's as they are. The environment adds only `CONTAINERD_NAMESPACE`, a namespace of
    the test's own, emptied and removed afterwards (a user's ctr uses `default`)."""
    driver = ContainerdDriver(project, tmp_path / "ctr")
    reason = driver.unavailable()
    if reason:
        pytest.skip(f"containerd cannot run here: {reason}")
    cfg = project.load()
    primary, secondary = cfg.primary, cfg.secondaries[0]
    image = make_image([tar_layer({"hello.txt": b"from the docs\n"})])
    layout = write_oci_layout(tmp_path / "layout", "v1", image)
    skopeo_push(
        layout,
        "v1",
        f"{primary.registry_address}/group/app:v1",
        f"--dest-cert-dir={project.trust_dir(cfg)}",
        "--dest-creds",
        creds_argument(project),
    )
    wait_replicated(project, secondary.name, "group/app", "v1", image.digest)
    ports = {"5000": primary.registry_port, "5001": secondary.registry_port}
    lines = re.sub(r"(?<=:)(5000|5001)\b", lambda m: str(ports[m[1]]), ctr_lines(DOCS.read_text()))
    env = {**os.environ, "CONTAINERD_NAMESPACE": driver.env["CONTAINERD_NAMESPACE"]}
    env.pop("CONTAINERD_ADDRESS", None)  # the lines find the socket themselves
    try:
        ran = subprocess.run(
            ["bash", "-c", f"set -e -o pipefail -x\n{lines}"],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert ran.returncode == 0, f"{lines}\n---\n{ran.stdout}\n{ran.stderr}"
        listed = driver.run("images", "ls").stdout
        assert re.search(
            rf"{re.escape(secondary.registry_address)}/group/app:v1 .*{image.digest}", listed
        ), listed
        assert _manifest_digest(project, primary.name, "group/app", "v2") == image.digest
    finally:
        driver.cleanup()
