"""The docs pages' generated sections are spliced one way: between their markers, or an error."""

from __future__ import annotations

import pytest

from gdk_geo.errors import GdkGeoError
from gdk_geo.settings import doc_sections

BEGIN, END = doc_sections.markers("table")


def test_the_section_between_the_markers_is_replaced_and_nothing_else() -> None:
    text = f"# Title\n\nbefore\n{BEGIN}\nold row\nold row\n{END}\nafter\n"
    spliced = doc_sections.splice(text, "table", "| new |", "page.md")
    assert spliced == f"# Title\n\nbefore\n{BEGIN}\n| new |\n{END}\nafter\n"
    assert doc_sections.splice(spliced, "table", "| new |", "page.md") == spliced


@pytest.mark.parametrize(
    "text",
    [
        "no markers at all\n",
        f"{BEGIN}\nan unclosed section\n",
        f"{END}\n{BEGIN}\nend before begin\n",
        f"{BEGIN}\none\n{END}\n{BEGIN}\ntwo\n{END}\n",
    ],
    ids=["missing", "unclosed", "reversed", "twice"],
)
def test_damaged_markers_are_an_error_not_an_appended_table(text: str) -> None:
    with pytest.raises(GdkGeoError) as caught:
        doc_sections.splice(text, "table", "| new |", "page.md")
    assert "page.md" in caught.value.what and BEGIN in caught.value.what
    assert "invoke geo.config.example" in str(caught.value.fix)


def test_both_generated_sections_are_spliced_the_same_way() -> None:
    from gdk_geo.doctor import checks_docs
    from gdk_geo.settings import settings_docs

    for name, splice in (
        ("settings", settings_docs.page_with_table),
        ("troubleshooting", checks_docs.page_with_table),
    ):
        with pytest.raises(GdkGeoError, match=name):
            splice("a page without the section\n")
