"""What `geo.check` looks at for registry token auth; `checks.py` declares the checks.

Each function returns (problem, detail): a problem in words when the check fails, else
None and what was seen. They exercise the real path: the bytes of both signing pairs, a
token minted now and sent to each registry, and each registry's advertised realm asked
for a token, the way `docker login` would.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx

from gdk_geo.errors import GdkGeoError
from gdk_geo.node.settings import PrimaryServiceSettings, SecondaryWorkerSettings
from gdk_geo.node.token_auth import minter_for
from gdk_geo.pki import certs, signing
from gdk_geo.registry.tokens import Access

TIMEOUT = 5.0

NodeSettings = PrimaryServiceSettings | SecondaryWorkerSettings
# A look at one node: (its name, its settings) -> (a problem, or None and what was seen).
Probe = Callable[[str, NodeSettings], tuple[str | None, str]]


def signing_pair(
    primary: PrimaryServiceSettings, secondary: SecondaryWorkerSettings
) -> tuple[str | None, str]:
    """Every node holds the same `localhost.crt` and `localhost.key` (the seed's copy step)."""
    differ = signing.differing_files(primary.node_root, secondary.node_root)
    if differ:
        return (
            f"{_how_they_differ(primary.node_root, secondary.node_root, differ)} (compared "
            f"{secondary.node_root} with {primary.node_root}): tokens the worker mints would "
            "be refused by the primary registry",
            "",
        )
    return None, f"SHA-256 {certs.fingerprint(primary.auth.certificate_path)[:23]}…"


def _how_they_differ(primary_root: Path, secondary_root: Path, differ: list[str]) -> str:
    """Per file: "the secondary's localhost.key is missing", or "… is not the primary's"."""
    parts = []
    for name in differ:
        if not (secondary_root / name).exists():
            parts.append(f"the secondary's {name} is missing")
        elif not (primary_root / name).exists():
            parts.append(f"the primary's {name} is missing")
        else:
            parts.append(f"the secondary's {name} is not the primary's")
    return "; ".join(parts)


def registry_tokens(
    primary: PrimaryServiceSettings, secondary: SecondaryWorkerSettings
) -> tuple[str | None, str]:
    """Each registry accepts a catalog token minted now with its node's `localhost.key`."""
    problem, seen = _on_each_node(
        primary, secondary, lambda name, node: _token_problem(name, node, primary.ca_file)
    )
    if problem:
        return problem, ""
    return None, f"{' and '.join(seen)} answered 200 to a token minted now"


def _token_problem(name: str, node: NodeSettings, ca_file: Path) -> tuple[str | None, str]:
    """Why `node`'s registry refuses a token its own signing key mints now, or None and
    the node's name."""
    try:
        token = minter_for(node.auth).mint("gdk-geo-check", [Access("registry", "catalog", ("*",))])
    except GdkGeoError as exc:
        return f"the {name}'s signing key cannot sign: {exc}", ""
    url = f"{node.registry_api_url.rstrip('/')}/v2/_catalog?n=1"
    try:
        response = httpx.get(
            url,
            headers={"Authorization": f"Bearer {token.token}"},
            verify=_tls(url, ca_file),  # TLS has checks of its own
            timeout=TIMEOUT,
            trust_env=False,
        )
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        return f"GET {url}: {type(exc).__name__}: {exc}", ""
    if response.status_code != 200:
        return (
            f"the {name} registry refused a token signed now with its localhost.key "
            f"(GET {url}: HTTP {response.status_code}): it trusts another localhost.crt",
            "",
        )
    return None, name


def realms(
    primary: PrimaryServiceSettings, secondary: SecondaryWorkerSettings
) -> tuple[str | None, str]:
    """Each registry challenges for a Bearer token, and the realm it names hands one out."""
    problem, seen = _on_each_node(
        primary,
        secondary,
        lambda name, node: _realm_problem(
            name, node.registry_api_url, primary.ca_file, node.auth.service
        ),
    )
    return problem, ", ".join(seen)


def _on_each_node(
    primary: PrimaryServiceSettings,
    secondary: SecondaryWorkerSettings,
    probe: Probe,
) -> tuple[str | None, list[str]]:
    """`probe` run on every node: every problem found, one a line, or None and what each
    node showed. Every node is probed even when the first fails, so one run names all."""
    problems, seen = [], []
    for name, node in (("primary", primary), ("secondary", secondary)):
        problem, shown = probe(name, node)
        if problem:
            problems.append(problem)
        else:
            seen.append(shown)
    if problems:
        return "\n".join(problems), []
    return None, seen


def _realm_problem(
    name: str, registry_url: str, ca_file: Path, service: str
) -> tuple[str | None, str]:
    url = f"{registry_url.rstrip('/')}/v2/"
    try:
        challenge = httpx.get(url, verify=_tls(url, ca_file), timeout=TIMEOUT, trust_env=False)
    except (httpx.HTTPError, OSError, ssl.SSLError) as exc:
        return f"GET {url}: {type(exc).__name__}: {exc}", ""
    header = challenge.headers.get("WWW-Authenticate", "")
    realm = dict(re.findall(r'(\w+)="([^"]*)"', header)).get("realm")
    if challenge.status_code != 401 or not header.lower().startswith("bearer ") or not realm:
        return (
            f"the {name} registry does not ask for a token (GET {url}: HTTP "
            f"{challenge.status_code}, WWW-Authenticate {header or 'absent'})",
            "",
        )
    try:
        answer = httpx.get(realm, params={"service": service}, timeout=TIMEOUT, trust_env=False)
        token = answer.json().get("token") if answer.status_code == 200 else None
    except (httpx.HTTPError, OSError, ValueError) as exc:
        return (
            f"the {name} registry's realm {realm} does not answer ({type(exc).__name__}: {exc})",
            "",
        )
    if not token:
        return (
            f"the {name} registry's realm {realm} answered HTTP {answer.status_code} "
            "without a token",
            "",
        )
    return None, realm


def _tls(url: str, ca_file: Path) -> ssl.SSLContext | bool:
    return ssl.create_default_context(cafile=str(ca_file)) if url.startswith("https:") else False
