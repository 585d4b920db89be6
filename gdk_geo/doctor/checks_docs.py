"""The troubleshooting table of `docs/troubleshooting.md`, derived from the check
declarations in `checks.py`.

Like the settings table, it is generated, never hand-edited, so the ✗ lines and fixes the
page shows are the ones `geo.check` prints; a test fails when the committed copy is stale
(regenerate with `invoke geo.config.example`).
"""

from __future__ import annotations

from collections.abc import Iterable

from gdk_geo.doctor.checks import CHECKS, Check, failure_line
from gdk_geo.settings import doc_sections

PAGE = "docs/troubleshooting.md"  # where the table is, from the repository's root


def troubleshooting_table(checks: Iterable[Check] = CHECKS) -> str:
    """One row per check: the ✗ line exactly as printed, what it verifies, and the fix."""
    rows = ["| `geo.check` prints | what it verifies | fix |", "| --- | --- | --- |"]
    for check in checks:
        rows.append(f"| `{failure_line(check)}` | {check.verifies} | {check.fix} |")
    return "\n".join(rows)


def page_with_table(text: str) -> str:
    """`text`, the troubleshooting page, with its troubleshooting section replaced by the
    current table."""
    return doc_sections.splice(text, "troubleshooting", troubleshooting_table(), PAGE)
