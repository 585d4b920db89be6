"""gdk.yml fuzzed: whatever the file holds, loading it gives settings or a clean ConfigError.

A user's gdk.yml is hand-edited text, so anything can be in it: broken YAML, YAML tags, deep
nesting, keys of the wrong type, numbers beyond any range, bytes that are not UTF-8. The rule
under test is the one the README promises: no tracebacks for your mistakes. In process,
any exception other than `ConfigError` fails the test (hypothesis shrinks it to a small
file). Valid files, built from the declared schema, load with the values they hold. Through
the CLI (`invoke geo.reconfigure` exits 1, no traceback): tests/e2e/test_config_fuzz.py.
"""

from __future__ import annotations

import ipaddress
import string
from io import StringIO
from pathlib import Path
from typing import Any

from fuzzing import examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from gdk_geo.errors import ConfigError
from gdk_geo.settings import config, schema
from gdk_geo.settings.declared import DECLARED

FUZZ = settings(
    max_examples=examples(300),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def load_or_config_error(path: Path, data: bytes) -> schema.Settings | None:
    """Load `data` as gdk.yml: the settings, or None for a ConfigError. Anything else raises."""
    path.write_bytes(data)
    try:
        return config.load(path)
    except ConfigError as exc:
        assert exc.what and exc.fix, exc  # every refusal says what is wrong and what to do
        return None


def dump(data: Any) -> str:
    buffer = StringIO()
    YAML(typ="safe", pure=True).dump(data, buffer)
    return buffer.getvalue()


# -- YAML-ish text --------------------------------------------------------------------------

KEY_WORDS = sorted({part for key in DECLARED for part in key.split(".")})
YAML_TOKENS = [
    ": ",
    ":",
    "\n",
    "\n  ",
    "\n    ",
    "- ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    "#",
    "&a ",
    "*a",
    "<<: ",
    "? ",
    "'",
    '"',
    "\\",
    "|\n",
    ">\n",
    "---\n",
    "...\n",
    "%YAML 1.1\n",
    "%TAG ! tag:x,2000:\n",
    "!!int ",
    "!!float ",
    "!!bool ",
    "!!str ",
    "!!binary ",
    "!!timestamp ",
    "!!set ",
    "!!omap ",
    "!!python/object:os.system ",
    "!local ",
    "0x",
    "0o",
    "1e400",
    "-",
    ".inf",
    ".nan",
    "~",
    "null",
    "true",
    "yes",
    "70000",
    "9" * 40,
    "\t",
    "\ufeff",
    "\x00",
    "\u2028",
    "é",
    "\\x",
    "\\u",
]
yamlish_text = st.lists(
    st.sampled_from(YAML_TOKENS) | st.sampled_from(KEY_WORDS) | st.text(max_size=4),
    max_size=40,
).map("".join)


@FUZZ
@given(text=yamlish_text)
def test_yamlish_text_loads_or_is_a_config_error(tmp_path: Path, text: str) -> None:
    load_or_config_error(tmp_path / "gdk.yml", text.encode("utf-8", "surrogatepass"))


# -- Mappings with the right keys and wrong values ------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=20)
    | st.sampled_from(["", "0", "-1", "70000", "0s", "-1s", "1e3s", "9" * 30 + "s", "localhost"])
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEY_WORDS) | st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=10,
)


def documents(depth: int = 0) -> st.SearchStrategy[dict[str, Any]]:
    """Mappings using the schema's key names (and others) with any values, nested a little."""
    inner = values if depth >= 2 else documents(depth + 1) | values
    keys = st.sampled_from(KEY_WORDS) | st.text(min_size=1, max_size=8)
    return st.dictionaries(keys, inner, max_size=5)


@FUZZ
@given(document=documents())
def test_mappings_with_wrong_types_load_or_are_a_config_error(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    load_or_config_error(tmp_path / "gdk.yml", dump(document).encode())


def leaf_paths() -> st.SearchStrategy[dict[str, Any]]:
    """One declared key set to any value (deep in the right place, so validation runs)."""

    def nest(key: str, value: Any) -> dict[str, Any]:
        for part in reversed(key.split(".")):
            value = {part: value}
        return value

    return st.builds(nest, st.sampled_from(sorted(DECLARED)), values)


@FUZZ
@given(document=leaf_paths())
def test_any_value_for_a_known_key_loads_or_is_a_config_error(
    tmp_path: Path, document: dict[str, Any]
) -> None:
    load_or_config_error(tmp_path / "gdk.yml", dump(document).encode())


@FUZZ
@given(data=st.binary(max_size=200))
def test_random_bytes_load_or_are_a_config_error(tmp_path: Path, data: bytes) -> None:
    load_or_config_error(tmp_path / "gdk.yml", data)


# -- Valid files load --------------------------------------------------------------------------

DURATION_UNITS = ["ms", "s", "m", "h"]
durations = st.builds(
    lambda n, unit: f"{n}{unit}",
    st.integers(min_value=1, max_value=1000),
    st.sampled_from(DURATION_UNITS),
)
label = st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=10)
addresses = st.sampled_from(["", "198.18.1.2", "site1.gdk.test", "::1"])
VALID: dict[str, st.SearchStrategy[Any]] = {
    "hostname": st.builds(lambda a, b: f"{a}.{b}", label, label) | st.just("localhost"),
    "listen_address": st.ip_addresses().map(str),
    "data_dir": st.sampled_from([".gdk-geo", "data", "/tmp/gdk-geo-data"]),
    "docker.container_prefix": st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,20}", fullmatch=True),
    "geo.primary_node": st.sampled_from(["", "primary", "secondary"]),
    "registry.image": st.sampled_from(["registry:2", "gdk-geo/registry:local", "registry"]),
    "registry.binary": st.sampled_from(["/usr/bin/docker-registry", "/opt/registry"]),
    "registry.log_level": st.sampled_from(["error", "warn", "info", "debug"]),
    "registry.notification_secret": st.just("")
    | st.text(string.ascii_letters + string.digits + "-_.~!", min_size=16, max_size=64),
    "registry.notifications.timeout": durations,
    "registry.notifications.threshold": st.integers(min_value=1, max_value=100),
    "registry.notifications.backoff": durations,
    "registry.auth_enabled": st.booleans(),
    "registry.auth.username": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True),
    "registry.auth.password": st.just("")
    | st.text(string.ascii_letters + string.digits + "-_.~!", min_size=16, max_size=64),
    "registry.auth.token_expire_delay": durations,
    "geo.primary.port": st.integers(1, 65535),
    "geo.primary.registry.port": st.integers(1, 65535),
    "geo.secondary.port": st.integers(1, 65535),
    "geo.secondary.registry.port": st.integers(1, 65535),
    "geo.secondary.registry_replication.enabled": st.booleans(),
    "geo.secondary.registry_replication.primary_api_url": st.sampled_from(
        ["", "https://primary.test:5000", "http://registry.test:5000/"]
    ),
    "geo.secondary.registry_replication.backfill_interval": durations,
    "geo.secondary.registry_replication.verification_interval": durations,
    "geo.secondary.registry_replication.max_concurrent_repositories": st.integers(1, 64),
    "geo.secondary.registry_replication.max_concurrent_blobs": st.integers(1, 64),
    "geo.primary.address": addresses,
    # Set, `docker.host` requires `address` (tests/unit/settings/test_node_engine.py).
    "geo.primary.docker.host": st.just(""),
    "geo.primary.docker.tls_verify": st.booleans(),
    "geo.primary.docker.cert_path": st.sampled_from(["", "/etc/docker/site1"]),
    "geo.secondary.address": addresses,
    # Set, `docker.host` requires `address` (tests/unit/settings/test_node_engine.py).
    "geo.secondary.docker.host": st.just(""),
    "geo.secondary.docker.tls_verify": st.booleans(),
    "geo.secondary.docker.cert_path": st.sampled_from(["", "/etc/docker/site1"]),
}


def test_the_valid_strategies_cover_every_setting() -> None:
    assert sorted(VALID) == sorted(DECLARED)


def _nested(flat: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split(".")
        node = document
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return document


@FUZZ
@given(flat=st.fixed_dictionaries({}, optional=VALID))
def test_valid_files_load_with_their_values(tmp_path: Path, flat: dict[str, Any]) -> None:
    loaded = load_or_config_error(tmp_path / "gdk.yml", dump(_nested(flat)).encode())

    assert loaded is not None, flat
    for key, value in flat.items():
        got: Any = loaded
        for part in key.split("."):
            got = getattr(got, part)
        if key == "listen_address":
            assert ipaddress.ip_address(got) == ipaddress.ip_address(value)
        else:
            assert got == value, key
