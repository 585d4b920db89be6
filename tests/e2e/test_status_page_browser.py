"""The secondary's `/admin/geo` page in a real headless browser (Debian's chromium + driver).

A project is set up, an image pushed with skopeo; the page must show the repository synced
with the totals, follow a second push by itself (the page reloads itself; the test never
does), and render to a screenshot that is a real picture: a PNG of a sensible size with
text in several colours, not a blank page.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import browser_rig
import pytest
from helpers import running_project
from registry_login import skopeo_push_image

from gdk_geo.project import Project

PAGE_DEADLINE = 60  # seconds for a push to show up on the page (it refreshes every 2 s)

pytestmark = browser_rig.BROWSER_MARKS
browser = browser_rig.browser


@pytest.fixture(scope="module")
def project(docker_client, tmp_path_factory) -> Iterator[Project]:
    root = tmp_path_factory.mktemp("page")
    with running_project(root, "p") as project:
        yield project


def _wait_for_text(driver, *texts: str) -> str:
    """The page text once it contains every one of `texts` (the page reloads itself)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def page_text(d) -> str | bool:
        text = d.execute_script("return document.body ? document.body.innerText : ''")
        return text if all(t in text for t in texts) else False

    wait = WebDriverWait(driver, PAGE_DEADLINE, ignored_exceptions=(WebDriverException,))
    return wait.until(page_text, message=f"the page never showed {texts}")


def _row(driver, repository: str) -> tuple[str, str]:
    """(state text, state cell class) of the repository's row."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def cell(d) -> tuple[str, str]:
        found = d.find_element(By.XPATH, f"//tr[td[1][normalize-space()='{repository}']]/td[2]")
        return found.text, found.get_attribute("class")

    wait = WebDriverWait(driver, 10, ignored_exceptions=(StaleElementReferenceException,))
    return wait.until(cell)


def _looks_like_a_page(png: Path) -> None:
    """A PNG of a sensible size with text in it: many colours, some ink, some green."""
    from PIL import Image

    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        width, height = image.size
        assert width >= 800 and height >= 400, image.size
        colours = image.convert("RGB").getcolors(maxcolors=width * height)
    assert len(colours) > 16, f"only {len(colours)} colours: a blank page?"
    background_count, _background = max(colours)
    ink = 1 - background_count / (width * height)
    assert 0.005 < ink < 0.9, f"{ink:.1%} of the page is not background"
    # `synced` is shown in green (#217645): antialiased text still has greenish pixels.
    assert any(g > r + 40 and g > b + 20 for _, (r, g, b) in colours), "no green on the page"


def test_status_page_in_a_real_browser(project: Project, browser, tmp_path: Path) -> None:
    skopeo_push_image(project, tmp_path, "group/first")
    url = f"{project.load().node('secondary').service_url}/admin/geo"
    browser.get(url)

    text = _wait_for_text(browser, "group/first", "synced: 1")
    assert "Geo secondary: container registry replication" in text
    assert "event feed: connected" in text
    assert _row(browser, "group/first") == ("synced", "state synced")

    skopeo_push_image(project, tmp_path, "group/second")
    text = _wait_for_text(browser, "group/second", "synced: 2")  # no reload by the test
    assert _row(browser, "group/second") == ("synced", "state synced")
    assert "failed: 0" in text and "pending: 0" in text

    screenshot = tmp_path / "admin-geo.png"
    assert browser.save_screenshot(str(screenshot))
    _looks_like_a_page(screenshot)
