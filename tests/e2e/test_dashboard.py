"""The public dashboard in a real browser (Debian's Chromium driven by Playwright) against a
real server, on SQLite and PostgreSQL. Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, sync_playwright

from puhui.config import Settings
from tests.builders import event, trip, write_jsonl
from tests.e2e.conftest import Server, credentials_of

CHROMIUM = Path(os.environ.get("PUHUI_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "screenshots"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run scripts/ensure-system-deps chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield launched
        launched.close()


@pytest.fixture
def min_cell() -> str:
    """k, the fewest citizens a published figure may describe: 1 (every figure shown) but in
    the tests of suppression, which set it with `parametrize`."""
    return "1"


@pytest.fixture(autouse=True)
def _published_cells(cli: Any, min_cell: str) -> None:
    """The server of each test starts with its `min_cell` (the `cli` environment)."""
    cli.env["PUHUI_MIN_CELL"] = min_cell


@pytest.fixture
def loaded(cli: Any, server: Server, tmp_path: Path) -> Server:
    """Records of two platforms in two provinces: credits, a duplicate, a rejection."""
    server.amap = credentials_of(cli("platform", "add", "amap"))  # type: ignore[attr-defined]
    cli("platform", "add", "szmetro")
    amap = [
        trip("t1"),
        trip("t2", subject="13900139000", region="440300", start="2026-10-03T08:00:00+08:00",
             end="2026-10-03T08:20:00+08:00"),
        event("e1", subject="13700137000"),
        trip("bad", region="999999"),
    ]  # fmt: skip
    metro = [trip("m1", platform="szmetro", scene="metro")]  # the same ride as t1
    cli("ingest", "--platform", "amap", str(write_jsonl(tmp_path / "a.jsonl", amap)))
    cli("ingest", "--platform", "szmetro", str(write_jsonl(tmp_path / "m.jsonl", metro)))
    return server


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_public_dashboard_in_both_languages(
    browser: Browser, loaded: Server, database_url: str, tmp_path: Path
) -> None:
    db = "sqlite" if database_url.startswith("sqlite") else "postgres"
    context = browser.new_context(accept_downloads=True, locale="zh-CN")
    page = context.new_page()
    page.goto(f"{loaded.base}/dashboard")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert "碳普惠清算平台" in page.title()
    for chart in ("by_province", "by_scene", "by_platform", "by_month", "outcomes"):
        bars = page.locator(f"[data-chart={chart}] .bar")
        assert bars.count() > 0, chart
        box = bars.first.bounding_box()
        assert box is not None
        assert box["width"] > 0, chart
    assert page.locator("#by_province").get_by_text("北京市").count() > 0
    assert page.locator("#outcomes").get_by_text("行程时间重叠").count() > 0
    shot(page, f"dashboard-zh-{db}")

    page.get_by_role("link", name="English").click()
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    assert (
        page.get_by_role("heading", level=1)
        .inner_text()
        .startswith("Carbon-inclusion clearing platform")
    )
    assert page.locator("#by_province").get_by_text("Beijing").count() > 0
    shot(page, f"dashboard-en-{db}")

    # The choice is remembered.
    page.goto(f"{loaded.base}/dashboard")
    assert page.locator("html").get_attribute("lang") == "en"

    with page.expect_download() as csv_download:
        page.locator("#by_scene").get_by_role("link", name="CSV").click()
    rows = list(csv.reader(io.StringIO(Path(csv_download.value.path()).read_text("utf-8-sig"))))
    assert rows[0] == ["Category", "Reduction (kg)", "Records", "Participants"]
    assert {r[0] for r in rows[1:]} >= {"Bus", "Recycling"}
    # Kilograms always with their three decimals, on the page and in the file.
    assert all(re.fullmatch(r"[0-9]+\.[0-9]{3}", r[1]) for r in rows[1:]), rows
    shown = page.locator("#by_scene tbody tr").first.locator("td").nth(1).inner_text()
    assert re.fullmatch(r"[0-9,]+\.[0-9]{3}", shown), shown
    with page.expect_download() as xlsx_download:
        page.locator("#by_platform").get_by_role("link", name="Excel").click()
    sheet = load_workbook(io.BytesIO(Path(xlsx_download.value.path()).read_bytes())).active
    assert sheet is not None
    assert [c.value for c in sheet[1]] == ["Category", "Reduction (kg)", "Records", "Participants"]
    assert sheet.max_row == 2  # amap only: szmetro's ride was a duplicate
    context.close()


# Per table cell of a page: its text, and the lines it is laid out on.
CELL_LINES = """() => Array.from(document.querySelectorAll('td, th')).map(cell => {
    const range = document.createRange();
    range.selectNodeContents(cell);
    const tops = new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top)));
    return [cell.textContent.trim(), tops.size];
})"""
# The height on screen, in CSS px, of the text of every chart label and value (its font size as
# drawn, however the chart is scaled).
CHART_TEXT = """() => Array.from(
    document.querySelectorAll('[data-chart] .bar-label, [data-chart] .bar-value')
).map(e => { const range = document.createRange(); range.selectNodeContents(e);
                return Math.min(...Array.from(range.getClientRects()).map(r => r.height)); })"""


def readable_on_a_phone(page: Page, name: str) -> None:
    """Nothing wider than the screen but a table that scrolls in its own box; chart labels of
    10 px or more; no table cell laid out a character or two per line (Chinese broken between
    every character); the screenshot kept."""
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, name
    sizes = page.evaluate(CHART_TEXT)
    assert all(size >= 10 for size in sizes), (name, sizes)
    for text, lines in page.evaluate(CELL_LINES):
        assert lines <= max(1, len(text) // 3), (name, text, lines)
    shot(page, name)


def test_the_dashboard_fits_a_phone_and_a_keyboard(
    browser: Browser, cli: Any, loaded: Server
) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    for lang in ("zh-CN", "en"):
        page.goto(f"{loaded.base}/dashboard?lang={lang}")
        assert page.locator(".chart .bar").count() > 0
        readable_on_a_phone(page, f"phone-dashboard-{lang}")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused in ("中文", "English")

    page.goto(f"{loaded.base}/dashboard?lang=zh-CN")
    sign_in(page, loaded.base, "staff", staff_token(cli, "ops", "operator"))
    readable_on_a_phone(page, "phone-operator")
    citizen_sign_in(page, loaded.base, cli, "13800138000")
    readable_on_a_phone(page, "phone-citizen")
    context.close()


def staff_token(cli: Any, name: str, role: str) -> str:
    found = re.search(r"token for \S+: (\S+)", cli("staff", "add", name, "--role", role))
    assert found
    return found.group(1)


def citizen_sign_in(page: Page, base: str, cli: Any, phone: str) -> None:
    """Sign in as a citizen: the phone number, then the code the SMS outbox received."""
    page.goto(f"{base}/dashboard/sign-in")
    page.locator("#phone").fill(phone)
    page.locator("form button").click()
    page.wait_for_load_state()
    page.locator("#code").fill(last_code(cli))
    page.locator("form button").click()
    page.wait_for_load_state()


def last_code(cli: Any) -> str:
    """The code of the last message in the server's SMS outbox."""
    env = cli.env
    outbox = Settings.load(env["PUHUI_DATABASE_URL"], env["PUHUI_KEY_FILE"]).outbox()
    found = re.search(r"\b([0-9]{6})\b", json.loads(outbox.read_text().splitlines()[-1])["text"])
    assert found
    return found.group(1)


def sign_in(page: Page, base: str, kind: str, token: str) -> None:
    page.goto(f"{base}/dashboard/login?kind={kind}")
    page.locator("#token").fill(token)
    page.locator("form button").click()
    page.wait_for_load_state()


def test_operators_see_each_platform_and_who_duplicates_whom(
    browser: Browser, cli: Any, loaded: Server
) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{loaded.base}/dashboard?lang=en")
    sign_in(page, loaded.base, "staff", staff_token(cli, "auditor", "regulator"))
    assert page.url.endswith("/dashboard/regulator")
    refused = page.goto(f"{loaded.base}/dashboard/operator")
    assert refused is not None
    assert refused.status == 403
    assert page.get_by_role("alert").inner_text() == "This page needs an operator's token."
    assert page.get_by_role("link", name="Go to your page").get_attribute("href") == (
        "/dashboard/regulator"
    )

    sign_in(page, loaded.base, "staff", staff_token(cli, "ops", "operator"))
    assert page.url.endswith("/dashboard/operator")
    assert page.locator("[data-chart=health] .bar").count() == 2
    # szmetro reported a ride amap had reported first.
    row = page.locator("#matrix tbody tr", has_text="szmetro")
    assert row.locator("td").all_inner_texts() == ["1"]
    assert page.locator("#matrix thead th").all_inner_texts()[1:] == ["amap"]
    assert page.locator("#rejections").get_by_text("unknown region").count() == 1
    shot(page, "operator")
    with page.expect_download() as download:
        page.locator("#health").get_by_role("link", name="CSV").click()
    text = Path(download.value.path()).read_text("utf-8-sig")
    assert text.splitlines()[0].startswith("Platform,Records submitted,credited")
    page.goto(f"{loaded.base}/dashboard/logout")
    page.goto(f"{loaded.base}/dashboard/operator")
    assert page.locator("form").count() == 1  # signed out
    context.close()


def test_a_citizen_opens_how_a_credit_was_computed(
    browser: Browser, cli: Any, loaded: Server
) -> None:
    cli("reward", "add", "river", "--kind", "donation", "--issuer", "CEPF", "--price-g", "100")
    cli("account", "retire", "13800138000", "--grams", "50", "--key", "k1")
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{loaded.base}/dashboard?lang=en")
    citizen_sign_in(page, loaded.base, cli, "+86 138 0013 8000")
    assert page.url.endswith("/dashboard/me")
    assert page.get_by_test_id("balance").inner_text() == "1,029 g CO₂e"  # 1 079 − 50 retired
    assert page.locator("#rewards").get_by_text("river").count() == 1
    assert page.locator("#certificates a").first.inner_text().startswith("PH-")
    # The credit says when the ride happened (China time), and when it was booked.
    credit = page.locator("#history tr", has_text="Credit").first.locator("td.when")
    assert credit.inner_text().startswith("2026-10-01 08:00")
    assert "booked 20" in credit.inner_text()
    shot(page, "citizen")
    page.get_by_role("link", name="How was this computed?").first.click()
    page.wait_for_load_state()
    assert page.get_by_test_id("methodology").inner_text().startswith("bj-low-carbon-travel@")
    sources = page.get_by_test_id("source").all_inner_texts()
    assert sources
    assert all(sources)
    shot(page, "citizen-credit")
    page.goto(f"{loaded.base}/dashboard/me?lang=zh-CN")
    assert page.get_by_role("heading", level=2).first.inner_text() == "账户明细"
    context.close()


@pytest.mark.parametrize("min_cell", ["2"])
def test_a_regulator_signs_in_and_sees_what_the_public_page_suppresses(
    browser: Browser, cli: Any, loaded: Server
) -> None:
    """With k = 2, each province's single citizen is published as "<2"; a regulator signed in
    reads the figures."""
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.goto(f"{loaded.base}/dashboard?lang=en")
    guangdong = page.locator("#by_province tbody tr", has_text="Guangdong").locator("td")
    assert guangdong.all_inner_texts()[1:] == ["<2", "<2", "<2"]
    assert page.locator("[data-chart=by_province] .bar").count() == 0
    assert "fewer than 2 people" in page.get_by_test_id("suppression-note").inner_text()
    shot(page, "public-suppressed")

    sign_in(page, loaded.base, "staff", staff_token(cli, "auditor", "regulator"))
    assert page.url.endswith("/dashboard/regulator")
    guangdong = page.locator("#by_province tbody tr", has_text="Guangdong").locator("td")
    assert guangdong.all_inner_texts()[2:] == ["1", "1"]  # one record, one citizen
    assert page.locator("#by_region tbody tr", has_text="440300").count() == 1
    row = page.locator("#matrix tbody tr", has_text="szmetro")
    assert row.locator("td").all_inner_texts() == ["1"]
    shot(page, "regulator")
    with page.expect_download() as download:
        page.locator("#by_province").get_by_role("link", name="CSV").click()
    rows = list(csv.reader(io.StringIO(Path(download.value.path()).read_text("utf-8-sig"))))
    assert ["Guangdong", "1"] in [[r[0], r[3]] for r in rows]

    # An operator lands on the operator's page, and may read the full figures too.
    sign_in(page, loaded.base, "staff", staff_token(cli, "ops", "operator"))
    assert page.url.endswith("/dashboard/operator")
    page.goto(f"{loaded.base}/dashboard/regulator")
    assert page.locator("#by_province tbody tr", has_text="Guangdong").count() == 1
    context.close()
