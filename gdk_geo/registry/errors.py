"""What the registry client raises: a `RegistryError`, or the specific subclass."""

from __future__ import annotations


class RegistryError(Exception):
    """The registry refused or failed a request (after retries, where retrying made sense)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RegistryUnavailable(RegistryError):
    """No (complete) answer: connection refused, reset or timed out, on every attempt.

    Also raised by a streamed upload whose source stream broke mid-body.
    """


class TLSVerificationFailed(RegistryError):
    """The registry's certificate does not verify against the CA file (or the system store).

    Not retried: it will not verify on the next attempt either. Verification is never
    turned off; pass the CA that signed the registry's certificate instead.
    """


class TokenRefused(RegistryError):
    """The registry answered 401 to a token we minted ourselves, even after a fresh one.

    A fresh token signed with the node's key is refused only when the registry trusts
    another key: the nodes' signing pairs differ, or the registry started with an older
    `localhost.crt`. Retrying cannot help; the message points to `geo.check`.
    """


class RepositoryNotFound(RegistryError):
    """404 NAME_UNKNOWN: the registry has never heard of the repository.

    Distinct from a failure so a sync can tell "deleted on the primary" from "error".
    """


class ManifestNotFound(RegistryError):
    """404 for a manifest reference (tag or digest) in a repository."""


class BlobNotFound(RegistryError):
    """404 for a blob the caller expected to exist."""


class DigestMismatch(RegistryError):
    """Bytes received do not hash to (or are not the size of) what was asked for."""


class TagDeletionUnsupported(RegistryError):
    """The registry cannot delete a tag on its own (Distribution 2.x answers 400 DIGEST_INVALID).

    Deleting by digest instead removes every tag pointing at that digest, so callers must
    decide whether that is acceptable; the client never falls back silently.
    """
