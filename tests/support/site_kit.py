"""A non-loopback address on this machine for tests: `prepare-site up 8`'s 198.18.0.1.

`prepare-site up N` (`testkit.sites`) puts 198.18.0.1 on the loopback interface, this
machine's "home" address as the sites see it, and starts site N (a network namespace with
an engine of its own, unused here). The address is not in 127.0.0.0/8, so a service bound
there is a listener beyond loopback by `gdk_geo.node.exposure`'s rule, and traffic to it
never leaves the machine (198.18.0.0/15 is routed nowhere else). Site 8 is these tests'
own; `down` removes 198.18.0.1 only when no other site is up. Where no site can be made,
the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

from testkit.sites import HOME_ADDRESS, SiteError, prepare, site_up, unavailable

SITE = 8


def _bindable(address: str) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def home_address() -> Iterator[str]:
    """198.18.0.1 on this machine while the block runs (site 8 up), then site 8 down."""
    why = unavailable()
    if why:
        pytest.skip(why)
    try:
        try:
            site_up(SITE)
        except SiteError as exc:
            pytest.fail(str(exc))  # a site that can be made and is not is a failure
        if not _bindable(HOME_ADDRESS):
            pytest.skip(f"prepare-site up {SITE} ran, but {HOME_ADDRESS} cannot be bound here")
        yield HOME_ADDRESS
    finally:
        prepare("down", SITE)
