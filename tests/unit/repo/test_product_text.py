"""What users read speaks of the project and its users only, and points inside the repository."""

from __future__ import annotations

import re

from helpers import REPO_ROOT

PRODUCT_TEXT = [
    REPO_ROOT / "README.md",
    REPO_ROOT / "tasks.py",
    REPO_ROOT / "gdk.example.yml",
    *sorted((REPO_ROOT / "docs").rglob("*.md")),
    *sorted((REPO_ROOT / "gdk_geo").rglob("*.py")),
    *sorted((REPO_ROOT / "templates").rglob("*.j2")),
]
OUTSIDE = re.compile(r"\.\./shared|DESIGN\.md|these machines|this machine kind", re.IGNORECASE)


def test_no_text_speaks_of_where_it_was_developed() -> None:
    found = [
        f"{path.relative_to(REPO_ROOT)}:{number}: {match.group(0)}"
        for path in PRODUCT_TEXT
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if (match := OUTSIDE.search(line))
    ]
    assert found == []


def test_the_readme_links_only_files_that_exist() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", readme)
    assert "docs/registry-replication.md" in targets
    assert [t for t in targets if not (REPO_ROOT / t).exists()] == []
