"""`compliance-bot audit --format html`, opened in a real browser: Debian's headless Chromium,
driven by selenium through Debian's chromedriver.

The report is made as a user makes it, by the command against the fake GitLab over HTTP;
the same run's JSON report is the reference for every number the page shows. Without a
browser these tests are skipped and say why (`.ci/run` installs chromium and
chromium-driver, as it installs postgresql).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fake_gitlab import FakeGitLab
from tests.scenarios import HYGIENE_FILES
from tests.test_audit import cli, four_outcomes_group, members_group, project, without

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
HOSTILE = '<img src=x onerror="document.title=1">'


def _executable(path: str) -> str | None:
    """Debian's path, or the same program found on PATH."""
    return path if Path(path).is_file() else shutil.which(Path(path).name)


def _why_no_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if _executable(path) is None:
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _why_no_browser()
    if reason:
        pytest.skip(f"no browser for the HTML report: {reason}")
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(_executable(CHROMIUM))
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    options.add_argument("--window-size=1280,1000")
    try:
        service = Service(executable_path=str(_executable(CHROMEDRIVER)))
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:
        pytest.skip(f"no browser for the HTML report: chromium did not start: {exc.msg}")
    try:
        yield driver
    finally:
        driver.quit()


def visible_names(driver: Any, table: str = "projects") -> list[str]:
    result: list[str] = driver.execute_script(
        "return Array.from(document.querySelectorAll('#' + arguments[0] + ' > tbody'))"
        ".filter(b => !b.hidden).map(b => b.querySelector('td').innerText.replace('▸', '')"
        ".trim())",
        table,
    )
    return result


def choose(driver: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def click(driver: Any, css: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.CSS_SELECTOR, css)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


async def reports(
    fake: FakeGitLab, tmp_path: Path, *args: str, group: str = "acme"
) -> tuple[Path, dict[str, Any]]:
    page = tmp_path / "report.html"
    code, _, err = await cli(fake, group, "--format", "html", "--output", str(page), *args)
    assert code in (0, 1, 3), err
    code, out, _ = await cli(fake, group, "--format", "json", *args)
    return page, json.loads(out)


def hostile_group(fake: FakeGitLab) -> None:
    four_outcomes_group(fake)
    # A project's own config names a required file with markup: the name reaches findings.
    config = (
        "version: 1\nrules:\n  repository.required_files:\n    files:\n"
        f"      - {{name: '{HOSTILE}', accept: [NOTICE]}}\n"
    )
    project(fake, "acme/hostile", {**HYGIENE_FILES, ".gitlab/compliance.yml": config})
    for i in range(6):
        project(fake, f"acme/team/p{i}", without("CHANGELOG.md") if i % 2 else None)


async def open_hostile_report(fake: FakeGitLab, tmp_path: Path, browser: Any) -> dict[str, Any]:
    """Audit the hostile group as the HTML page and as JSON, and open the page in `browser`:
    the JSON document, to compare the page with."""
    hostile_group(fake)
    page, document = await reports(fake, tmp_path)
    browser.get(page.as_uri())
    return document


async def test_the_numbers_on_the_page_are_the_json_report_s(
    fake: FakeGitLab, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    document = await open_hostile_report(fake, tmp_path, browser)
    summary = document["summary"]["projects"]
    for outcome in ("compliant", "warnings", "non-compliant", "error"):
        card = browser.find_element(By.ID, f"projects-count-{outcome}")
        shown = int(card.find_element(By.CSS_SELECTOR, ".n").text)
        assert shown == summary[outcome.replace("-", "_")], outcome
    assert int(browser.find_element(By.ID, "projects-total").text) == summary["total"]
    bars = {
        bar.get_attribute("data-check"): int(bar.find_element(By.CSS_SELECTOR, ".bar-n").text)
        for bar in browser.find_elements(By.CSS_SELECTOR, "li.bar")
    }
    assert bars == document["summary"]["checks"]
    assert bars["repository.required_files: CHANGELOG"] == 4  # gappy and three of the team's
    # Markup in user text is shown as text, never as an element.
    assert browser.find_elements(By.CSS_SELECTOR, "main img") == []
    assert browser.title == "Compliance audit of acme"
    assert HOSTILE in browser.find_element(By.TAG_NAME, "main").text


async def test_the_table_filters_by_outcome_and_by_check_and_sorts_by_each_column(
    fake: FakeGitLab, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    projects = (await open_hostile_report(fake, tmp_path, browser))["projects"]
    everyone = sorted(p["name"] for p in projects)
    assert sorted(visible_names(browser)) == everyone

    for outcome in ("warnings", "non-compliant", "error", "compliant"):
        choose(browser, "projects-outcome", outcome)
        expected = sorted(p["name"] for p in projects if p["status"] == outcome)
        assert sorted(visible_names(browser)) == expected, outcome
        assert browser.find_element(By.ID, "projects-shown").text == str(len(expected))
    choose(browser, "projects-outcome", "")

    # The rule filter, from its bar: the projects lacking a CHANGELOG, whatever their outcome.
    click(browser, 'li.bar[data-check="repository.required_files: CHANGELOG"] button')
    lacking = sorted(
        p["name"] for p in projects if "repository.required_files: CHANGELOG" in p["checks"]
    )
    assert sorted(visible_names(browser)) == lacking and len(lacking) == 4
    choose(browser, "projects-check", "")
    browser.find_element(By.ID, "projects-search").send_keys("team/")
    assert sorted(visible_names(browser)) == [n for n in everyone if "/team/" in n]
    browser.find_element(By.ID, "projects-search").clear()
    browser.execute_script(
        "document.getElementById('projects-search').dispatchEvent(new Event('input'))"
    )
    assert len(visible_names(browser)) == len(everyone)

    click(browser, 'th button[data-sort="name"]')
    assert visible_names(browser) == everyone
    click(browser, 'th button[data-sort="name"]')
    assert visible_names(browser) == everyone[::-1]
    rank = {"compliant": 0, "warnings": 1, "non-compliant": 2, "error": 3}
    for key, value in (
        ("rank", lambda p: rank[p["status"]]),
        ("errors", lambda p: p["errors"]),
        ("warnings", lambda p: p["warnings"]),
        ("lacking", lambda p: len(p["checks"])),
    ):
        click(browser, f'th button[data-sort="{key}"]')
        order = [value(next(p for p in projects if p["name"] == n)) for n in visible_names(browser)]
        assert order == sorted(order), key
        click(browser, f'th button[data-sort="{key}"]')
        order = [value(next(p for p in projects if p["name"] == n)) for n in visible_names(browser)]
        assert order == sorted(order, reverse=True), key


async def test_a_row_expands_to_its_findings_and_links_to_gitlab(
    fake: FakeGitLab, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    document = await open_hostile_report(fake, tmp_path, browser)
    gappy = next(p for p in document["projects"] if p["name"] == "acme/gappy")
    body = browser.find_element(By.CSS_SELECTOR, f'tbody[data-id="{gappy["id"]}"]')
    detail = body.find_element(By.CSS_SELECTOR, "tr.detail")
    assert not detail.is_displayed()
    assert body.find_element(By.CSS_SELECTOR, "a").get_attribute("href") == gappy["web_url"]
    click(browser, f'tbody[data-id="{gappy["id"]}"] button.toggle')
    assert detail.is_displayed()
    for finding in gappy["findings"]:
        assert finding["message"] in detail.text and finding["fix"] in detail.text
    empty = next(p for p in document["projects"] if p["name"] == "acme/empty")
    row = browser.find_element(By.CSS_SELECTOR, f'tbody[data-id="{empty["id"]}"] tr.main')
    assert "empty repository" in row.text


async def test_members_table_and_the_change_since_the_last_run(
    fake: FakeGitLab, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    members_group(fake)
    memory = tmp_path / "memory.json"
    code, _, _ = await cli(fake, "acme/team", "--members", "--save", str(memory))
    assert code == 1
    project(fake, "acme/team/new-one", without("LICENSE"))
    page, document = await reports(
        fake, tmp_path, "--members", "--compare", str(memory), group="acme/team"
    )
    browser.get(page.as_uri())
    members = document["members"]
    assert sorted(visible_names(browser, "members")) == sorted(m["name"] for m in members)
    shown = int(browser.find_element(By.CSS_SELECTOR, "#members-count-non-compliant .n").text)
    assert shown == document["summary"]["members"]["non_compliant"] == 4
    since = browser.find_element(By.ID, "since").text
    assert "1 new" in since and "acme/team/new-one" in since
    choose(browser, "projects-change", "new")
    assert visible_names(browser) == ["acme/team/new-one"]


async def test_readable_on_a_phone_and_printable(
    fake: FakeGitLab, tmp_path: Path, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    hostile_group(fake)
    page, _ = await reports(fake, tmp_path)
    browser.set_window_size(390, 844)
    try:
        browser.get(page.as_uri())
        width = browser.execute_script("return document.documentElement.scrollWidth")
        assert width <= browser.execute_script("return window.innerWidth")
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
        assert not browser.find_element(By.CSS_SELECTOR, ".controls").is_displayed()
        assert browser.find_element(By.ID, "projects").is_displayed()
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
        browser.set_window_size(1280, 1000)


def test_user_text_is_escaped_and_only_web_addresses_are_linked() -> None:
    """The renderer alone, on literals: what GitLab sends is text, never markup or script."""
    from bot.audit import AuditResult, Row, Status
    from bot.audit_html import render_html
    from bot.model import Finding, Severity

    finding = Finding(
        "repository.required_files",
        Severity.ERROR,
        "</script><script>alert(1)</script> is missing",
        fix='Add "<b>it</b>"',
        location="</script><script>alert(1)</script>",
    )
    result = AuditResult(
        group="<acme>",
        projects=[
            Row("project", 1, "acme/<img src=x>", "javascript:alert(1)", Status.NON_COMPLIANT,
                findings=(finding,)),
            Row("project", 2, "acme/ok", 'https://gitlab.example.com/acme/ok"onclick="x',
                Status.ERROR, reason="<i>403</i>"),
        ],
    )  # fmt: skip
    page = render_html(result)
    script = page[page.index("<script>") :]
    assert page.count("<script>") == 1 and script.count("</script>") == 1
    assert "alert(1)" not in script and "acme" not in script
    assert "<img" not in page and "<b>it</b>" not in page and "<i>403" not in page
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt; is missing" in page
    assert "javascript:" not in page
    assert 'href="https://gitlab.example.com/acme/ok&quot;onclick=&quot;x"' in page
    assert "<title>Compliance audit of &lt;acme&gt;</title>" in page
