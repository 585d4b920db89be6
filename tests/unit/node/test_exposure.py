"""The rule for listeners beyond loopback (`gdk_geo.node.exposure`), by itself.

What each service does with it, in-process: tests/unit/secondary/test_beyond_loopback.py and
tests/unit/primary/test_beyond_loopback.py; on a real non-loopback address:
tests/integration/test_beyond_loopback.py.
"""

from __future__ import annotations

import base64

import pytest

from gdk_geo.node.exposure import (
    BasicLogin,
    Exposure,
    admin_login,
    is_loopback,
    node_token_given,
)

TOKEN = "node-token-0123456789"


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.0.0.2", "127.255.255.254", "::1", "[::1]", "::ffff:127.0.0.1", " ::1 "],
)
def test_loopback_addresses(address: str) -> None:
    assert is_loopback(address)


@pytest.mark.parametrize(
    "address",
    [
        "0.0.0.0",  # every address, loopback among them
        "::",
        "198.18.0.1",
        "10.0.0.5",
        "128.0.0.1",
        "::ffff:10.0.0.1",
        "localhost",  # a name could resolve anywhere
        "",
        "127.0.0.1.example",
    ],
)
def test_everything_else_is_beyond_loopback(address: str) -> None:
    assert not is_loopback(address)


def test_the_node_token_as_a_bearer_or_private_token() -> None:
    assert node_token_given({"authorization": f"Bearer {TOKEN}"}, TOKEN)
    assert node_token_given({"authorization": f"bearer {TOKEN}"}, TOKEN)
    assert node_token_given({"private-token": TOKEN}, TOKEN)
    assert not node_token_given({}, TOKEN)
    assert not node_token_given({"authorization": "Bearer wrong"}, TOKEN)
    assert not node_token_given({"authorization": f"Basic {TOKEN}"}, TOKEN)
    assert not node_token_given({"authorization": f"Bearer {TOKEN}x"}, TOKEN)
    assert not node_token_given({"authorization": "Bearer "}, ""), "an empty token opens nothing"
    assert not node_token_given({"private-token": ""}, "")


def test_exposure_admits_anyone_on_loopback_and_the_token_beyond() -> None:
    assert Exposure("127.0.0.1", TOKEN).admits({})
    assert Exposure("::1", TOKEN).admits({})
    beyond = Exposure("198.18.0.1", TOKEN)
    assert not beyond.admits({})
    assert not beyond.admits({"authorization": "Bearer wrong"})
    assert beyond.admits({"authorization": f"Bearer {TOKEN}"})
    assert not Exposure("0.0.0.0", TOKEN).admits({})
    assert TOKEN not in repr(beyond)


def basic(user: str, password: str) -> dict[str, str]:
    return {"authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_basic_login() -> None:
    login = BasicLogin("root", "s3cret-password")
    assert login.accepts(basic("root", "s3cret-password"))
    scheme_in_lowercase = "basic " + basic("root", "s3cret-password")["authorization"][6:]
    assert login.accepts({"authorization": scheme_in_lowercase})
    assert not login.accepts(basic("root", "wrong"))
    assert not login.accepts(basic("admin", "s3cret-password"))
    assert not login.accepts({})
    assert not login.accepts({"authorization": "Basic not-base64!"})
    assert not login.accepts({"authorization": "Basic " + base64.b64encode(b"root").decode()})
    assert not login.accepts({"authorization": "Bearer s3cret-password"})
    assert "s3cret" not in repr(login)


def test_a_password_with_a_colon_and_an_empty_password() -> None:
    assert BasicLogin("root", "a:b").accepts(basic("root", "a:b"))
    assert not BasicLogin("root", "").accepts(basic("root", "")), "no password, no login"


def test_the_admin_page_asks_for_a_login_only_beyond_loopback() -> None:
    assert admin_login("127.0.0.1", "root", "pw") is None
    assert admin_login("198.18.0.1", "root", "pw") == BasicLogin("root", "pw")
    assert admin_login("0.0.0.0", "root", "pw") == BasicLogin("root", "pw")
