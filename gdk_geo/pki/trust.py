"""The client configuration gdk-geo writes for the user under `<data_dir>/trust/`.

Each client finds a registry's CA its own way, so the trust directory holds one layout per
kind of client, for every node's registry at its `host:port`:

- `ca.crt`: the local CA alone, for `skopeo --cert-dir` and `podman --cert-dir` (they read
  every `*.crt` in the directory they are given, whatever the registry);
- `certs.d/<host:port>/ca.crt`: Docker's layout (`/etc/docker/certs.d`), which is also the
  layout of containers-image's `/etc/containers/certs.d` (podman, skopeo, buildah);
- `hosts.d/<host:port>/hosts.toml`: containerd's registry host configuration, for
  `ctr --hosts-dir` (and nerdctl's `--hosts-dir`). Without it containerd speaks plain HTTP
  to any `localhost` registry, and the TLS listener answers `400 Bad Request`.

Every file is written atomically and only when its bytes change. What was written is
recorded, with each file's SHA-256, in `.gdk-geo-written.json`: a registry that is gone
from gdk.yml (or moved to another port) loses the files written for it, and a file gdk-geo
did not write, or that was edited since, is never overwritten nor removed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gdk_geo.fsutil import atomic_write

CA_FILE = "ca.crt"
DOCKER_DIR = "certs.d"
CONTAINERD_DIR = "hosts.d"
RECORD = ".gdk-geo-written.json"
CONTAINERD_CAPABILITIES = ("pull", "resolve", "push")


@dataclass
class TrustReport:
    """What one write of the trust directory did, by path relative to it."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # not ours, or edited since: left alone

    @property
    def changed(self) -> bool:
        return bool(self.written or self.removed)


def hosts_toml(address: str, ca_file: Path) -> str:
    """containerd's `hosts.toml` for the registry at `address` (`host:port`): HTTPS only,
    verified with `ca_file` (an absolute path: ctr resolves a relative one against its own
    working directory, not the file's)."""
    url = f"https://{address}"
    capabilities = ", ".join(f'"{c}"' for c in CONTAINERD_CAPABILITIES)
    return (
        "# Written by gdk-geo (`invoke geo.reconfigure`); edits are kept, never overwritten.\n"
        f'server = "{url}"\n'
        "\n"
        f'[host."{url}"]\n'
        f"  ca = {json.dumps(str(ca_file))}\n"
        f"  capabilities = [{capabilities}]\n"
    )


def client_files(trust_dir: Path, ca_pem: bytes, addresses: Iterable[str]) -> dict[str, bytes]:
    """Every per-registry file, by path relative to `trust_dir`, with its bytes."""
    ca_file = trust_dir.resolve() / CA_FILE
    files: dict[str, bytes] = {}
    for address in addresses:
        files[f"{DOCKER_DIR}/{address}/{CA_FILE}"] = ca_pem
        files[f"{CONTAINERD_DIR}/{address}/hosts.toml"] = hosts_toml(address, ca_file).encode()
    return files


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_record(trust_dir: Path) -> dict[str, str]:
    """What gdk-geo wrote before: path → SHA-256; nothing when there is no record yet (or
    one that does not parse: then nothing is removed, which is the safe side)."""
    try:
        data = json.loads((trust_dir / RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def _is_ours(path: Path, recorded: str | None) -> bool:
    """Whether the file at `path` may be replaced or removed: absent, or byte for byte what
    gdk-geo recorded writing there."""
    if not path.exists():
        return True
    return recorded is not None and _digest(path.read_bytes()) == recorded


def _remove_empty_parents(path: Path, stop: Path) -> None:
    """Remove `path`'s directory and its parents up to `stop` while they are empty."""
    for directory in path.parents:
        if directory == stop or stop not in directory.parents:
            return
        try:
            directory.rmdir()
        except OSError:  # not empty: something else lives there
            return


def write_client_trust(trust_dir: Path, ca_pem: bytes, addresses: Iterable[str]) -> TrustReport:
    """Make `trust_dir` hold the CA and each client's layout for exactly `addresses`.

    `ca.crt` at the top is always the CA (that file has been gdk-geo's since the first
    release). The per-registry files follow the rule in the module's docstring.
    """
    report = TrustReport()
    wanted = client_files(trust_dir, ca_pem, addresses)
    recorded = _read_record(trust_dir)
    record: dict[str, str] = {}
    top = trust_dir / CA_FILE
    if not top.exists() or top.read_bytes() != ca_pem:
        atomic_write(top, ca_pem, mode=0o644)
        report.written.append(CA_FILE)
    for name, data in wanted.items():
        path = trust_dir / name
        if path.exists() and path.read_bytes() == data:
            record[name] = _digest(data)
        elif _is_ours(path, recorded.get(name)):
            atomic_write(path, data, mode=0o644)
            record[name] = _digest(data)
            report.written.append(name)
        else:
            report.kept.append(name)
    for name, digest in recorded.items():
        if name in wanted:
            continue
        path = trust_dir / name
        if not path.exists():
            continue
        if _is_ours(path, digest):
            path.unlink()
            _remove_empty_parents(path, trust_dir)
            report.removed.append(name)
        else:
            report.kept.append(name)
    _write_record(trust_dir, record, recorded)
    return report


def _write_record(trust_dir: Path, record: dict[str, str], before: dict[str, str]) -> None:
    """Record what is gdk-geo's now; untouched when nothing changed (mtimes stay)."""
    if record == before and (trust_dir / RECORD).exists():
        return
    text = json.dumps({"files": dict(sorted(record.items()))}, indent=2) + "\n"
    atomic_write(trust_dir / RECORD, text, mode=0o644)
