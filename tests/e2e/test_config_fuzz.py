"""gdk.yml's hardest cases through the CLI: `invoke geo.reconfigure` exits 1, no traceback.

Hand-picked hard files (deep nesting, malformed YAML tags, numbers past any range, bytes
that are not UTF-8) given to the real `invoke` on a scratch project: exit 1, the file named,
nothing written. The fuzzing itself, in process, is tests/unit/settings/test_config_fuzz.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import invoke, write_gdk_yml

CLI_CASES = {
    "yaml syntax": b"geo:\n  primary: [1,\n",
    "nested too deeply": b"geo: " + b"[" * 1000 + b"]" * 1000 + b"\n",
    "malformed !!int": b"geo:\n  primary:\n    port: !!int 0x\n",
    "malformed !!float": b"hostname: !!float abc\n",
    "a number with 5000 digits": b"geo:\n  primary:\n    port: " + b"9" * 5000 + b"\n",
    "not UTF-8": b"hostname: \xff\xfe\n",
    "a list at the top": b"- geo\n- primary\n",
    "wrong types everywhere": b"geo: {primary: {port: [1]}, secondary: yes}\nhostname: 12\n",
    "a duration past Go's range": b"registry:\n  notifications:\n    timeout: 9999999999999s\n",
    "a count past any int": b"registry:\n  notifications:\n    threshold: " + b"9" * 30 + b"\n",
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_invalid_files_fail_cleanly_through_the_cli(tmp_path: Path, case: str) -> None:
    (tmp_path / "gdk.yml").write_bytes(CLI_CASES[case])

    result = invoke(tmp_path, "geo.reconfigure", timeout=60)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "gdk.yml" in result.stderr
    assert not (tmp_path / ".gdk-geo").exists(), "nothing written for an invalid file"


def test_a_valid_file_passes_the_cli(tmp_path: Path) -> None:
    write_gdk_yml(tmp_path, "geo:\n  primary:\n    port: 1\n")
    result = invoke(tmp_path, "geo.config.get", "geo.primary.port", timeout=60)
    assert (result.returncode, result.stdout.strip()) == (0, "1")
