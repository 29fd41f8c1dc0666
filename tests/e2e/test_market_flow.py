"""The public registry of certified units in a real browser (Debian's Chromium driven by
Playwright) against `puhui serve`, on SQLite and PostgreSQL.

Ten citizens' paper recycling of October 2026 in Chengdu is ingested by `puhui ingest` (560 kg
each); nine of them let their credits be certified. With `puhui market` the exchange certifies
the month (a batch of 5 units, 1 withheld in its buffer) and sells 3 to Acme (`puhui company
add`), which retires 2 for its 2026 ESG report. On the public dashboard the navigation leads
to the registry, which shows the batch with its units by holder and its Merkle root, Acme
holding 1 unit and the retirement of 2; every serial number is shown whole, on a phone too.
The retirement's certificate link opens the certificate naming the serial range retired. An
operator finds the batch's buffer and its shortfall, none, on their view.
Screenshots are kept in test-artifacts/."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from puhui.bootstrap import bootstrap
from puhui.config import Settings
from puhui.domain.consent import Scope
from puhui.service import consent, oversight, queries
from tests.builders import event, write_jsonl
from tests.e2e.conftest import Server, start_server
from tests.e2e.test_dashboard import (  # noqa: F401 (the fixture)
    browser,
    readable_on_a_phone,
    shot,
    sign_in,
)

COMPANY = "91350100M000100Y43"
PHONES = [f"1380013800{n}" for n in range(10)]
PURPOSE = "2026 ESG report"
# Every serial number and Merkle root on the page is shown whole: nothing cut or hidden.
CODES_WHOLE = """() => Array.from(document.querySelectorAll('td.code')).every(
    cell => cell.scrollWidth <= cell.clientWidth + 1)"""


@pytest.fixture
def traded(cli: Any, tmp_path: Path) -> Iterator[tuple[Server, dict[str, str]]]:
    """The market's steps done by `puhui` on the server's database, then `puhui serve`
    started; the serial numbers and the certificate."""
    cli("platform", "add", "amap")
    records = [
        event(f"r{c}-{i}", subject=PHONES[c], quantity="400", material="paper",
              start=f"2026-10-{1 + i % 28:02d}T10:{i:02d}:00+08:00")
        for c in range(10)
        for i in range(40)
    ]  # fmt: skip
    cli("ingest", "--platform", "amap", str(write_jsonl(tmp_path / "paper.jsonl", records)))
    # The citizens' grants, as they give them on their platform's consent page; an operator.
    env = cli.env
    app = bootstrap(Settings(env["PUHUI_DATABASE_URL"], Path(env["PUHUI_KEY_FILE"])))
    try:
        for phone in PHONES[:9]:
            pseudonym = queries.pseudonym_of(app, phone)
            consent.grant(app, pseudonym, "amap", frozenset({Scope.CERTIFY}), 90)
        operator = oversight.issue_staff_token(app, "ops", oversight.Role.OPERATOR).token
    finally:
        app.close()
    certified = cli("market", "certify", "--period", "2026-10", "--methodology",
                    "cn-common@1.0.0", "--region", "51", "--key", "c1")  # fmt: skip
    cli("company", "add", COMPANY, "--name", "Acme 有限公司")
    sold = cli("market", "sell", COMPANY, "--units", "3", "--price", "68.50", "--key", "s1")
    retired = cli("market", "retire", COMPANY, "--units", "2", "--beneficiary", "Acme",
                  "--purpose", PURPOSE, "--key", "r1")  # fmt: skip
    facts = {
        "operator": operator,
        "batch": found(r"batch (CN-PH-\S+): 5 units, 1 in its buffer", certified),
        "sold": found(r"CNY a unit: (CN-PH-\S+)", sold),
        "retired": found(r"retired 2 units: (CN-PH-\S+);", retired),
        "certificate": found(r"certificate (CR-[0-9]+-[0-9A-F]+)", retired),
    }
    server = start_server(cli, tmp_path)
    yield server, facts
    server.process.terminate()
    server.process.wait(timeout=30)


def found(pattern: str, output: str) -> str:
    """What a command's output says, by a pattern's group."""
    match = re.search(pattern, output)
    assert match, output
    return match.group(1)


def test_the_registry_shows_the_batch_the_holding_and_the_retirement(
    browser: Browser,  # noqa: F811 (the fixture)
    traded: tuple[Server, dict[str, str]],
    database_url: str,
) -> None:
    server, facts = traded
    db = "sqlite" if database_url.startswith("sqlite") else "postgres"
    serial = facts["batch"]
    retired_serial = facts["retired"]
    held_serial = serial.rsplit("-", 2)[0] + "-3-3"  # the unit sold and not retired
    assert facts["sold"] == serial.rsplit("-", 2)[0] + "-1-3"
    context = browser.new_context(locale="zh-CN")
    page = context.new_page()
    page.goto(f"{server.base}/dashboard")
    page.get_by_role("link", name="登记簿").click()
    page.wait_for_load_state()
    assert page.url.endswith("/registry")
    assert "核证减排量登记簿" in page.title()

    batch = page.locator(f'#batches tr[data-batch="{serial}"]')
    assert batch.locator('[data-testid="batch-serial"]').inner_text() == serial
    held = {h: batch.locator(f'[data-holder="{h}"]').inner_text()
            for h in ("exchange", "company", "buffer", "retired", "cancelled")}  # fmt: skip
    assert held == {"exchange": "1", "company": "1", "buffer": "1", "retired": "2",
                    "cancelled": "0"}  # fmt: skip
    assert len(batch.locator("td.root").inner_text()) == 64

    holding = page.locator(f'#holdings tr[data-company="{COMPANY}"]')
    assert "Acme 有限公司" in holding.inner_text()
    assert holding.locator('[data-testid="units-held"]').inner_text() == "1"
    assert holding.locator(".serial").all_inner_texts() == [held_serial]

    retirement = page.locator(f'#retirements tr[data-certificate="{facts["certificate"]}"]')
    assert retirement.locator('[data-testid="units-retired"]').inner_text() == "2"
    assert PURPOSE in retirement.inner_text()
    assert retirement.locator(".serial").all_inner_texts() == [retired_serial]
    assert page.evaluate(CODES_WHOLE)
    shot(page, f"registry-zh-{db}")

    retirement.get_by_role("link", name=facts["certificate"]).click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/registry/retirements/{facts['certificate']}")
    certificate = page.get_by_test_id("certificate").inner_text()
    for fact in (facts["certificate"], retired_serial, serial, "Acme 有限公司", COMPANY, PURPOSE):
        assert fact in certificate, fact
    shot(page, f"retirement-certificate-{db}")
    context.close()

    # On a phone: the registry, and the operator's view of the batch's buffer (no shortfall).
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = phone.new_page()
    page.goto(f"{server.base}/registry?lang=en")
    assert page.locator(f'#batches tr[data-batch="{serial}"]').count() == 1
    assert page.evaluate(CODES_WHOLE)
    readable_on_a_phone(page, f"phone-registry-{db}")
    sign_in(page, server.base, "staff", facts["operator"])
    assert page.url.endswith("/dashboard/operator")
    assert page.get_by_test_id("shortfall-total").inner_text() == "Shortfall over all batches: 0 g"
    batch = page.locator(f'#market tr[data-batch="{serial}"]')
    assert batch.get_by_test_id("shortfall-g").inner_text() == "0"
    assert batch.get_by_test_id("shortfall").count() == 0
    readable_on_a_phone(page, f"phone-operator-market-{db}")
    phone.close()
