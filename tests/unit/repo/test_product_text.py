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


def _anchor(heading: str) -> str:
    """GitHub's anchor for a markdown heading: lower case, punctuation dropped, spaces `-`."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_docs_pages_link_only_files_and_headings_that_exist() -> None:
    broken = []
    for page in [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]:
        for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", page.read_text()):
            linked = (page.parent / target).resolve() if target else page
            markdown = linked.suffix == ".md" and linked.is_file()
            headings = linked.read_text().splitlines() if markdown else []
            anchors = {_anchor(line.lstrip("#")) for line in headings if line.startswith("#")}
            if not linked.exists() or (anchor and anchor not in anchors):
                broken.append(f"{page.relative_to(REPO_ROOT)}: {target}#{anchor}")
    assert broken == []
