"""Certificates and keys laid out for the tests of `gdk_geo.pki`, without a project.

`Layout` is a data directory and two node roots, as `ensure_certificates` fills them;
`write_inconsistent_key` breaks a signing key in the one way only cryptography's
consistency check finds.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from gdk_geo.pki.certs import CertificateReport, ensure_certificates


@dataclass(frozen=True)
class Layout:
    """A data directory and two node roots, the first the primary's."""

    data_dir: Path
    primary: Path
    secondary: Path

    @classmethod
    def under(cls, root: Path) -> Layout:
        return cls(root / "data", root / "primary", root / "secondary")

    @property
    def ca_crt(self) -> Path:
        return self.data_dir / "ca" / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.data_dir / "ca" / "ca.key"

    def files(self) -> list[Path]:
        names = ("registry_host.crt", "registry_host.key")
        return [self.ca_crt, self.ca_key] + [
            root / name for root in (self.primary, self.secondary) for name in names
        ]

    def ensure(
        self,
        hostname: str = "localhost",
        now: datetime | None = None,
        addresses: Sequence[str] = (),
    ) -> CertificateReport:
        return ensure_certificates(
            self.data_dir, hostname, self.primary, self.secondary, addresses=addresses, now=now
        )


def write_inconsistent_key(key_path: Path) -> None:
    """A key that parses and matches its certificate (the same modulus) but carries a
    wrong CRT exponent: only cryptography's consistency check tells."""
    numbers = load_pem_private_key(key_path.read_bytes(), password=None).private_numbers()
    broken = rsa.RSAPrivateNumbers(
        numbers.p,
        numbers.q,
        numbers.d,
        numbers.dmp1 + 2,
        numbers.dmq1,
        numbers.iqmp,
        numbers.public_numbers,
    ).private_key(unsafe_skip_rsa_key_validation=True)
    key_path.write_bytes(
        broken.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


# --- a real handshake, as a registry serves its pair and a strict client checks it ---


@contextmanager
def tls_server(root: Path, host: str) -> Iterator[int]:
    """A TLS server serving the node root's `registry_host.crt`/`.key`, as its registry does,
    on `host` (an OS-chosen free port); it greets every client, then closes."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(root / "registry_host.crt", root / "registry_host.key")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.bind((host, 0))
    listener.listen()
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # the listener was closed
            with conn:
                conn.settimeout(5)
                try:
                    with context.wrap_socket(conn, server_side=True) as tls:
                        tls.sendall(b"hello")
                except (ssl.SSLError, OSError):
                    pass  # the client refused our certificate: that is the client's verdict

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)


def handshake(host: str, port: int, cafile: Path, server_hostname: str = "localhost") -> bytes:
    """Connect trusting only `cafile` and checking `server_hostname`, as a strict client does."""
    context = ssl.create_default_context(cafile=str(cafile))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    with (
        socket.create_connection((host, port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname=server_hostname) as tls,
    ):
        return tls.recv(5)
