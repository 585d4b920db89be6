"""Certificates and keys: the local CA, each node's TLS pair, the token signing pair.

`local_ca` makes and keeps the CA; `x509_parts` builds and reads certificate parts;
`certs` the TLS pair `registry_host.crt`/`.key` of every node; `signing` the token signing
pair `localhost.crt`/`.key`, made on the primary and copied to every other node; `trust`
the clients' view of the CA under `<data_dir>/trust/` (Docker's certs.d, containerd's
hosts.d, the `--cert-dir` of podman and skopeo).
Imported lazily (cryptography is slow to load): name the module you need.
"""

__all__ = ["certs", "signing", "trust"]
