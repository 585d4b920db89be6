"""Log test clients in to a project's registries the way Docker does.

With `registry.auth_enabled` on (the default), a registry answers 401 with a Bearer
challenge; a client fetches a token from the advertised realm with Basic credentials and
sends the request again. `RegistryLogin` does that for httpx clients, and `credentials`
reads the user and generated password of a project set up by `geo.setup`.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
from collections.abc import Generator
from pathlib import Path

import httpx
from ruamel.yaml import YAML
from yarl import URL

from gdk_geo.node.settings import load_token_auth
from gdk_geo.node.token_auth import ALL_ACTIONS, tool_tokens
from gdk_geo.project import Project
from gdk_geo.registry.auth import MintedTokens, request_access
from gdk_geo.registry.reference import OCI_MANIFEST
from testkit.images import make_image, skopeo_push, write_oci_layout


def credentials(project: Project) -> tuple[str, str]:
    """(username, password) of the project's registry user."""
    cfg = project.load()
    password = cfg.registry.auth.password or (
        (project.secrets_dir(cfg) / "registry_password").read_text().strip()
    )
    return cfg.registry.auth.username, password


def creds_argument(project: Project) -> str:
    """`user:password`, as skopeo's `--src-creds`/`--dest-creds` take it."""
    return ":".join(credentials(project))


class RegistryLogin(httpx.Auth):
    """Answers a registry's Bearer challenge at its realm, with Basic credentials."""

    def __init__(self, username: str, password: str) -> None:
        self.basic = httpx.BasicAuth(username, password)
        self._tokens: dict[str, str] = {}  # by the scopes a request needs, as docker keeps them

    @classmethod
    def of(cls, project: Project) -> RegistryLogin:
        return cls(*credentials(project))

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        key = " ".join(a.scope() for a in request_access(request.method, URL(str(request.url))))
        if key in self._tokens:
            request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        response = yield request
        challenge = response.headers.get("WWW-Authenticate", "")
        if response.status_code != 401 or not challenge.lower().startswith("bearer "):
            return
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        query = {key: params[key] for key in ("service", "scope") if key in params}
        token_request = httpx.Request("GET", params["realm"], params=query)
        token_request = next(self.basic.auth_flow(token_request))
        token_response = yield token_request
        token_response.read()
        if token_response.status_code != 200:
            return
        self._tokens[key] = token_response.json()["token"]
        request.headers["Authorization"] = f"Bearer {self._tokens[key]}"
        yield request


def push_image(project: Project, repo: str, payload: bytes) -> str:
    """A one-layer image pushed as the user (Bearer challenge answered at the realm)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {}}).encode()
    with httpx.Client(
        base_url=project.load().node("primary").registry_url,
        verify=ssl.create_default_context(cafile=str(project.trust_dir(project.load()) / "ca.crt")),
        auth=RegistryLogin.of(project),
        timeout=120,
    ) as client:
        descriptors = []
        for data, media in ((payload, "application/vnd.oci.image.layer.v1.tar"), (config, None)):
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            start = client.post(f"/v2/{repo}/blobs/uploads/")
            assert start.status_code == 202, start.text
            location = start.url.join(start.headers["Location"])
            done = client.put(location.copy_merge_params({"digest": digest}), content=data)
            assert done.status_code == 201, done.text
            descriptors.append({"mediaType": media, "digest": digest, "size": len(data)})
        layer, conf = descriptors
        conf["mediaType"] = "application/vnd.oci.image.config.v1+json"
        manifest = json.dumps(
            {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": conf, "layers": [layer]}
        ).encode()
        response = client.put(
            f"/v2/{repo}/manifests/v1", content=manifest, headers={"Content-Type": OCI_MANIFEST}
        )
        assert response.status_code == 201, response.text
        return "sha256:" + hashlib.sha256(manifest).hexdigest()


class MintedAuth(httpx.Auth):
    """Tokens signed with a node's own key, like the Geo worker's: no realm is asked, so it
    works while that node's Geo service is down (as the fault tests need)."""

    def __init__(self, project: Project, node: str, actions: frozenset[str] = ALL_ACTIONS) -> None:
        self.tokens = minted_tokens(project, node, actions)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.tokens is not None:
            request.headers.update(self.tokens.header(request.method, URL(str(request.url))))
        yield request


def minted_tokens(
    project: Project, node: str, actions: frozenset[str] = ALL_ACTIONS
) -> MintedTokens | None:
    """Request-scoped tokens for `node`'s registry, signed with its `localhost.key`."""
    paths = project.node(project.load(), node)
    data = YAML(typ="safe").load(paths.gitlab_yml.read_text())
    return tool_tokens(load_token_auth(data, paths.root), actions)


def skopeo_push_image(project: Project, directory: Path, repository: str) -> None:
    """Push a new small image to the project's primary as `repository:v1`, the way a user
    does: skopeo, the project's CA, and the registry user's credentials."""
    layout = write_oci_layout(directory / repository.replace("/", "-"), "v1", make_image())
    cfg = project.load()
    skopeo_push(
        layout,
        "v1",
        f"{cfg.node(cfg.primary_name).registry_address}/{repository}:v1",
        f"--dest-cert-dir={project.trust_dir(cfg)}",
        "--dest-creds",
        creds_argument(project),
    )
