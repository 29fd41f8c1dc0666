"""The public registry of certified units on the web, on SQLite and PostgreSQL: `/registry` lists
the batch, what the company holds and its retirement; the retirement's certificate opens as a
page and as a PDF, and an id whose keyed check fails names none (404); the operator's and the
regulator's views show each batch's buffer and shortfall, 0 before a certified credit is
reversed and the grams the buffer could not cover after."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from puhui.bootstrap import App
from puhui.domain.consent import Scope
from puhui.entrypoints.dashboard import COOKIES
from puhui.service import admin, consent, ingest, market, oversight, queries, registry
from tests.builders import event

COMPANY = "91350100M000100Y43"
PHONES = [f"1380013800{n}" for n in range(10)]
SERIAL = "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-1-5"


def credits(app: App) -> None:
    """Ten citizens' paper recycling in Sichuan in October 2026 (560 kg each); nine of them
    let their credits be certified."""
    admin.add_platform(app, "amap")
    records = [
        event(f"r{c}-{i}", subject=PHONES[c], quantity="400", material="paper",
              start=f"2026-10-{1 + i % 28:02d}T10:{i:02d}:00+08:00")
        for c in range(10)
        for i in range(40)
    ]  # fmt: skip
    ingest.ingest_records(app, "amap", records)
    for phone in PHONES[:9]:
        pseudonym = queries.pseudonym_of(app, phone)
        consent.grant(app, pseudonym, "amap", frozenset({Scope.CERTIFY}), 90)


def traded(app: App) -> str:
    """A batch of 5 units (1 in the buffer), 3 sold to Acme, 2 of them retired: the
    certificate's id."""
    credits(app)
    done = market.certify(app, "2026-10", "cn-common@1.0.0", "51", "c1", "operator:li")
    assert done.result["batch"]["serial"] == SERIAL
    market.add_company(app, COMPANY, "Acme 有限公司")
    market.sell(app, COMPANY, 3, "68.50", "s1", "operator:li")
    retired = market.retire(app, COMPANY, 2, "Acme", "2026 ESG report", "r1", "company:acme")
    return str(retired.result["certificate"])


def sign_in(client: TestClient, app: App, role: oversight.Role) -> None:
    token = oversight.issue_staff_token(app, f"{role.value}-wang", role).token
    client.cookies.clear()
    client.cookies.set(COOKIES["staff"], token)


def row(page: str, attribute: str, value: str) -> str:
    """The table row of a page with this data attribute."""
    found = re.search(rf'<tr {attribute}="{re.escape(value)}"[^>]*>(.*?)</tr>', page, re.S)
    assert found, page
    return found.group(0)


def cells(row_html: str) -> list[str]:
    """The text of each cell of a row, its spaces collapsed."""
    return [
        " ".join(re.sub(r"<[^>]+>", " ", cell).split())
        for cell in re.findall(r"<td[^>]*>(.*?)</td>", row_html, re.S)
    ]


def test_the_registry_lists_the_batch_holdings_and_retirements(
    app: App, client: TestClient
) -> None:
    certificate = traded(app)
    root = registry.batches(app)[0].root

    page = client.get("/registry?lang=en")
    assert page.status_code == 200
    assert "Registry of certified units" in page.text
    batch = cells(row(page.text, "data-batch", SERIAL))
    # Serial, methodology, region, vintage, units; for sale, companies, buffer, retired,
    # cancelled; the Merkle root.
    assert batch == [SERIAL, "cn-common@1.0.0", "51 Sichuan", "2026-10", "5",
                     "1", "1", "1", "2", "0", root]  # fmt: skip
    holding = cells(row(page.text, "data-company", COMPANY))
    assert holding == ["Acme 有限公司", COMPANY, "1", "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-3-3"]
    retirement = row(page.text, "data-certificate", certificate)
    assert f'href="/registry/retirements/{certificate}"' in retirement
    assert f'href="/registry/retirements/{certificate}.pdf"' in retirement
    assert cells(retirement)[1:] == [
        f"Acme 有限公司 {COMPANY}", "2", "Acme", "2026 ESG report",
        "2026-11-01 08:00", "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-1-2",
    ]  # fmt: skip

    chinese = client.get("/registry?lang=zh-CN").text
    assert "核证减排量登记簿" in chinese
    assert "51 四川省" in chinese
    # The public pages lead to it.
    assert 'href="/registry"' in client.get("/dashboard").text


def test_a_retirement_certificate_as_a_page_and_a_pdf(app: App, client: TestClient) -> None:
    certificate = traded(app)
    root = registry.batches(app)[0].root

    page = client.get(f"/registry/retirements/{certificate}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    for fact in (
        certificate, "Acme 有限公司", COMPANY, "2 t CO2e", "Acme", "2026 ESG report",
        "2026-11-01 08:00 China time", "CN-PH-BJ-CN-COMMON.V1.0.0-2026-10-1-2", SERIAL,
        "cn-common@1.0.0", "51 四川省", root, f"/registry/retirements/{certificate}",
    ):  # fmt: skip
        assert fact in page.text, fact
    assert "http://" not in page.text
    assert "https://" not in page.text

    pdf = client.get(f"/registry/retirements/{certificate}.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    number, check = certificate.rsplit("-", 1)
    forged = f"{number}-{'0' if check[0] != '0' else '1'}{check[1:]}"
    other = "CR-00000002-" + check  # no such retirement, nor its check
    for wrong in (forged, other, certificate.lower(), "CR-1", "x" * 40):
        assert client.get(f"/registry/retirements/{wrong}").status_code == 404, wrong
        assert client.get(f"/registry/retirements/{wrong}.pdf").status_code == 404, wrong
    assert "没有这份注销证明" in client.get(f"/registry/retirements/{forged}").text
    missing = client.get(f"/registry/retirements/{forged}?lang=en").text
    assert "No such retirement certificate" in missing
    assert 'href="/registry"' in missing


@pytest.mark.parametrize("role", [oversight.Role.OPERATOR, oversight.Role.REGULATOR])
def test_staff_see_a_buffer_shortfall(app: App, client: TestClient, role: oversight.Role) -> None:
    credits(app)
    # No buffer: any reversal of a certified credit is a shortfall.
    market.certify(app, "2026-10", "cn-common@1.0.0", "51", "c1", "operator:li", buffer_bp=0)
    sign_in(client, app, role)
    view = f"/dashboard/{role.value}?lang=en"

    before = client.get(view).text
    assert "Certified units: buffers and shortfalls" in before
    assert "Shortfall over all batches: 0 g" in before
    batch = row(before, "data-batch", SERIAL)
    assert "flagged" not in batch
    assert cells(batch)[-2:] == ["0", "0"]  # drawn, shortfall
    assert cells(row(before, "data-pool", "cn-common@1.0.0:51")) == [
        "cn-common@1.0.0",
        "51 Sichuan",
        "40,000",
    ]

    oldest = queries.account(app, PHONES[0]).history[-1]
    assert registry.proofs(app, queries.pseudonym_of(app, PHONES[0]), oldest.entry_id)
    market.reverse_credit(app, oldest.entry_id, "fraud found on review", "v1", "operator:li")

    after = client.get(view).text
    assert "Shortfall over all batches: 20,000 g" in after
    batch = row(after, "data-batch", SERIAL)
    assert 'class="flagged"' in batch
    assert 'data-testid="shortfall"' in batch
    assert cells(batch)[-2:] == ["0", "20,000"]
    assert "缺口（克）" in client.get(f"/dashboard/{role.value}?lang=zh-CN").text
