"""The `/admin/geo` page's actions, filters and search, clicked in headless Chromium.

Real registries, the primary's Geo service and a real worker (`worker_rig`'s fixtures, a
setup of this module's own); the browser is `browser_rig`'s. Every change the
tests wait for comes from the page's own polling: a marker set on `window` before a click
must still be there afterwards, which a reload would have wiped.
"""

from __future__ import annotations

from typing import Any

import browser_rig
import worker_rig
from worker_rig import GeoSetup, digest_of_tag, push_announced, unique

from testkit.net import wait_for

pytestmark = browser_rig.BROWSER_MARKS
geo = worker_rig.geo  # the fixtures, with setups of this module's own
workers = worker_rig.workers
browser = browser_rig.browser
DEADLINE = 60  # seconds for the page to show what the worker did (it polls every 2 s)
NEVER_RETRY = (3600.0, 3600.0)  # a failed sync waits an hour: only a click resyncs it


def _wait(driver: Any, what: str, probe: Any) -> Any:
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, DEADLINE, ignored_exceptions=(WebDriverException,))
    return wait.until(lambda d: probe(d), message=f"the page never showed {what}")


def _rows(driver: Any) -> dict[str, tuple[str, str]]:
    """repository → (sync state, verification state) of every row shown."""
    rows = driver.execute_script(
        "return [...document.querySelectorAll('#rows tr[data-repository]')]"
        ".map(tr => [tr.dataset.repository, tr.cells[1].textContent, tr.cells[2].textContent])"
    )
    return {name: (state, verification) for name, state, verification in rows}


def _mark(driver: Any) -> None:
    driver.execute_script("window.__notReloaded = true")


def _not_reloaded(driver: Any) -> bool:
    return bool(driver.execute_script("return window.__notReloaded === true"))


def _click(driver: Any, xpath: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.XPATH, xpath).click()


def _filter(driver: Any, state: str = "", search: str = "") -> None:
    """Choose a state and type a name in the filter form, then submit it (a page load)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.NAME, "state")).select_by_value(state)
    box = driver.find_element(By.NAME, "search")
    box.clear()
    box.send_keys(search)
    _mark(driver)
    driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]").click()
    # The filter is a GET form: wait for the new page, or the old page's rows would answer.
    _wait(driver, "the filtered page", lambda d: not _not_reloaded(d) and _loaded(d))


def _loaded(driver: Any) -> bool:
    return driver.execute_script("return document.readyState") == "complete"


def test_resync_a_failed_row_then_filter_and_search(geo: GeoSetup, workers, browser) -> None:
    synced, fixed, still = unique("page/ok"), unique("page/fixed"), unique("page/still")
    worker = workers(retry=NEVER_RETRY)
    worker.start()
    push_announced(geo, synced, "v1")
    worker.wait_state(synced, "synced")
    worker.stop()
    for repo in (fixed, still):
        push_announced(geo, repo, "v1")
    geo.primary.stop()  # the cause: the primary registry is down when their events arrive
    try:
        worker.start()
        worker.wait_state(fixed, "failed")
        worker.wait_state(still, "failed")
    finally:
        geo.primary.start()  # the cause is fixed; the failed rows wait an hour to retry

    browser.get(f"{worker.url}/admin/geo")
    _wait(browser, "the failed rows", lambda d: _rows(d).get(fixed, ("",))[0] == "failed")
    _mark(browser)
    _click(browser, f"//tr[@data-repository='{fixed}']//button[normalize-space()='Resync']")
    _wait(browser, f"{fixed} synced", lambda d: _rows(d)[fixed][0] == "synced")
    assert _not_reloaded(browser), "the row changed without a reload"
    assert digest_of_tag(geo.secondary.url, fixed, "v1") is not None
    assert _rows(browser)[still][0] == "failed", "only the clicked row was resynced"

    _filter(browser, state="failed")
    shown = _wait(browser, "only failed rows", lambda d: (r := _rows(d)) and r)
    assert set(shown) == {still}, shown
    _filter(browser, state="", search=synced)
    assert set(_wait(browser, "the search", lambda d: _rows(d))) == {synced}
    _filter(browser, state="failed", search=synced)
    _wait(browser, "no match", lambda d: "No repositories match" in d.page_source)


def test_reverify_all_fills_the_verified_bar(geo: GeoSetup, workers, browser) -> None:
    repos = [unique("page/verify"), unique("page/verify")]
    worker = workers()
    worker.start()
    for repo in repos:
        push_announced(geo, repo, "v1")
    wait_for(
        "every repository synced",
        lambda: (
            (counts := worker.status().counts)["synced"] > 0
            and counts["synced"] == sum(counts.values())
        ),
        worker.logs,
    )
    browser.get(f"{worker.url}/admin/geo")
    percent = _wait(browser, "the verified bar", lambda d: _text(d, "verified-percent"))
    assert percent != "100%", "nothing was verified yet"
    _mark(browser)
    _click(browser, "//button[@id='reverify-all']")
    _wait(browser, "verified 100%", lambda d: _text(d, "verified-percent") == "100%")
    assert _not_reloaded(browser)
    width = browser.execute_script("return document.getElementById('verified-bar').style.width")
    assert width == "100%"
    assert {v for _, v in _rows(browser).values()} == {"succeeded"}


def _text(driver: Any, element_id: str) -> str:
    return driver.execute_script(f"return document.getElementById('{element_id}').textContent")
