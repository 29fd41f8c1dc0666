"""The carbon market over HTTP, on SQLite and PostgreSQL: an operator certifies the October
credits of the citizens who take part and sells units to a company; the company, signing with
its own key, retires some and the public registry verifies the certificate; a citizen's proof
that a credit is in the batch checks against the published root. One market per database: the
tests read it, and what one of them changes another does not count on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.consent import Scope
from puhui.domain.errors import NotFoundError
from puhui.domain.market import uscc_check
from puhui.entrypoints.api import create_app
from puhui.service import admin, consent, credentials, ingest, oversight, queries, registry
from tests import builders
from tests.conftest import NOW
from tests.integration.conftest import Platform
from tests.pgcluster import PgCluster

ACME = "91350100M000100Y43"
BETA = "91110108MA01G0001" + uscc_check("91110108MA01G0001")
CITIZENS = [f"1380013800{c}" for c in range(10)]
PERIOD = "2026-10"


@dataclass
class Market:
    """A market on one database: the exchange's staff, two companies with their own keys, a
    member platform, and the answers of the first certification, sale and retirement."""

    app: App
    client: TestClient
    operator: str
    regulator: str
    amap: Platform
    acme: Platform
    beta: Platform
    methodology: str
    credits: int
    credited_g: int
    in_batch: list[str]
    pooled: list[str]
    certified: dict[str, Any]
    sold: dict[str, Any]
    retired: dict[str, Any]


def staff(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def keyed(key: str) -> dict[str, str]:
    return {"Idempotency-Key": key}


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def market(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Market]:
    folder = tmp_path_factory.mktemp("market")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'puhui.db'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database("m_" + uuid.uuid4().hex[:16])
    app = bootstrap(Settings(url, folder / "subject.key"), clock=lambda: NOW)
    admin.init(app)
    admin.add_platform(app, "amap")
    # Ten citizens recycle 400 kg of paper forty times each in Chengdu in October.
    records = [
        builders.event(
            f"r{c}-{i}", subject=phone, quantity="400", material="paper", region="510100",
            start=f"2026-10-{1 + i % 28:02d}T10:{i:02d}:00+08:00",
        )
        for c, phone in enumerate(CITIZENS)
        for i in range(40)
    ]  # fmt: skip
    _, receipts = ingest.ingest_records(app, "amap", records)
    assert set(receipts.column("status").to_pylist()) == {"credited"}
    for phone in CITIZENS:
        pseudonym = queries.pseudonym_of(app, phone)
        consent.grant(app, pseudonym, "amap", frozenset({Scope.CERTIFY}), 90)
    operator = oversight.issue_staff_token(app, "ops", oversight.Role.OPERATOR).token
    regulator = oversight.issue_staff_token(app, "mee", oversight.Role.REGULATOR).token
    with TestClient(create_app(app)) as client:
        for uscc, name in ((ACME, "Acme 有限公司"), (BETA, "Beta 股份有限公司")):
            added = client.post(
                "/v1/market/companies", json={"uscc": uscc, "name": name}, headers=staff(operator)
            )
            assert added.status_code == 201, added.text
        methodology = receipts.column("methodology").to_pylist()[0]
        certified = client.post(
            "/v1/market/certifications",
            json={"period": PERIOD, "methodology": methodology, "region": "510100"},
            headers=staff(operator, "certify-2026-10"),
        )
        assert certified.status_code == 200, certified.text
        sale = {"company": ACME, "units": 3, "unit_price_cny": "68.50"}
        sold = client.post("/v1/market/sales", json=sale, headers=staff(operator, "sale-1"))
        assert sold.status_code == 200, sold.text
        acme = Platform(client, credentials.issue_company(app, ACME))
        retirement = {"units": 2, "beneficiary": "Acme", "purpose": "2026 ESG report"}
        retired = acme.request(
            "POST", "/v1/company/retirements", retirement, headers=keyed("retire-1")
        )
        assert retired.status_code == 200, retired.text
        # Which credits the batch took (its leaves, oldest first) and which wait in the pool.
        leaves = [str(leaf["record_id"]) for leaf in registry.reads(app).leaves(1)]
        grams = dict(
            zip(
                receipts.column("record_id").to_pylist(),
                receipts.column("reduction_g").to_pylist(),
                strict=True,
            )
        )
        yield Market(
            app=app,
            client=client,
            operator=operator,
            regulator=regulator,
            amap=Platform(client, credentials.issue(app, "amap")),
            acme=acme,
            beta=Platform(client, credentials.issue_company(app, BETA)),
            methodology=methodology,
            credits=sum(1 for g in grams.values() if g > 0),
            credited_g=sum(grams.values()),
            in_batch=leaves,
            pooled=[r for r, g in grams.items() if g > 0 and r not in leaves],
            certified=certified.json(),
            sold=sold.json(),
            retired=retired.json(),
        )
    app.close()


def test_an_operator_certifies_and_sells_units(market: Market) -> None:
    certified = market.certified
    # 5.6 t certified: 5 units, 1 of them (5 %, rounded up) in the buffer, 0.6 t left pooled
    # (a citizen's second recycling of a day credits nothing: the daily cap).
    assert (certified["credits"], certified["citizens"]) == (market.credits, 10)
    assert len(market.in_batch) == certified["batch"]["leaves"]
    assert certified["certified_g"] == market.credited_g
    assert certified["pool_g"] == market.credited_g % 1_000_000
    batch = certified["batch"]
    assert (batch["units"], batch["buffer_units"]) == (market.credited_g // 1_000_000, 1)
    assert batch["serial"].startswith("CN-PH-")
    assert batch["serial"].endswith(f"-{PERIOD}-1-{batch['units']}")
    assert certified["replayed"] is False

    sold = market.sold
    assert (sold["company"], sold["units"], sold["unit_price_cny"]) == (ACME, 3, "68.50")
    assert sold["serials"] == [batch["serial"].removesuffix(f"-1-{batch['units']}") + "-1-3"]

    # The same key and request: the first answer again, nothing changed.
    again = market.client.post(
        "/v1/market/sales",
        json={"company": ACME, "units": 3, "unit_price_cny": "68.5"},
        headers=staff(market.operator, "sale-1"),
    )
    assert again.status_code == 200, again.text
    assert again.json() == {**sold, "replayed": True}
    other = market.client.post(
        "/v1/market/sales",
        json={"company": ACME, "units": 1, "unit_price_cny": "68.50"},
        headers=staff(market.operator, "sale-1"),
    )
    assert (other.status_code, other.json()["code"]) == (409, "idempotency_conflict")
    recertified = market.client.post(
        "/v1/market/certifications",
        json={"period": PERIOD, "methodology": market.methodology, "region": "510100"},
        headers=staff(market.operator, "certify-2026-10"),
    )
    assert recertified.json() == {**certified, "replayed": True}

    # One unit is left to sell, the buffer's is not for sale.
    too_many = market.client.post(
        "/v1/market/sales",
        json={"company": BETA, "units": 2, "unit_price_cny": "70"},
        headers=staff(market.operator, "sale-2"),
    )
    assert (too_many.status_code, too_many.json()["code"]) == (409, "insufficient_units")


def test_operator_routes_refuse_clearly(market: Market) -> None:
    client, operator = market.client, market.operator
    exists = client.post(
        "/v1/market/companies", json={"uscc": ACME, "name": "Acme"}, headers=staff(operator)
    )
    assert (exists.status_code, exists.json()["code"]) == (409, "company_exists")
    typo = ACME[:-1] + ("0" if ACME[-1] != "0" else "1")
    wrong = client.post(
        "/v1/market/companies", json={"uscc": typo, "name": "Acme"}, headers=staff(operator)
    )
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_input")
    assert typo not in wrong.json()["detail"]
    unknown = "91110108MA01G0002" + uscc_check("91110108MA01G0002")
    nobody = client.post(
        "/v1/market/sales",
        json={"company": unknown, "units": 1, "unit_price_cny": "1"},
        headers=staff(operator, "sale-nobody"),
    )
    assert (nobody.status_code, nobody.json()["code"]) == (404, "not_found")
    price = client.post(
        "/v1/market/sales",
        json={"company": ACME, "units": 1, "unit_price_cny": "1.005"},
        headers=staff(operator, "sale-price"),
    )
    assert price.status_code == 422
    assert "1.005" not in price.json()["detail"]
    for period in ("0000-01", "9999-12", "2026-13"):
        month = client.post(
            "/v1/market/certifications",
            json={"period": period, "methodology": market.methodology, "region": "51"},
            headers=staff(operator, f"certify-{period}"),
        )
        assert (month.status_code, month.json()["code"]) == (422, "invalid_request")
    no_key = client.post(
        "/v1/market/sales",
        json={"company": ACME, "units": 1, "unit_price_cny": "1"},
        headers=staff(operator),
    )
    assert no_key.status_code == 422
    regulator = client.post(
        "/v1/market/sales",
        json={"company": ACME, "units": 1, "unit_price_cny": "1"},
        headers=staff(market.regulator, "sale-regulator"),
    )
    assert (regulator.status_code, regulator.json()["code"]) == (403, "forbidden")
    anonymous = client.get("/v1/market/shortfalls")
    assert (anonymous.status_code, anonymous.json()["code"]) == (401, "missing_token")
    # Both the operator and the regulator see the buffers.
    for token in (operator, market.regulator):
        seen = client.get("/v1/market/shortfalls", headers=staff(token))
        assert seen.status_code == 200, seen.text
        assert [b["batch"] for b in seen.json()["batches"]] == [market.certified["batch"]["serial"]]


def test_a_company_retires_and_anyone_verifies_the_certificate(market: Market) -> None:
    retired = market.retired
    first = market.sold["serials"][0].removesuffix("-1-3")
    assert retired["certificate"].startswith("CR-")
    assert (retired["company"], retired["units"]) == (ACME, 2)
    assert (retired["beneficiary"], retired["purpose"]) == ("Acme", "2026 ESG report")
    assert retired["serials"] == [f"{first}-1-2"]

    client = market.client
    verified = client.get(f"/v1/registry/retirements/{retired['certificate']}")
    assert verified.status_code == 200, verified.text
    shown = verified.json()
    assert (shown["company"], shown["company_name"]) == (ACME, "Acme 有限公司")
    assert (shown["units"], shown["serials"]) == (2, retired["serials"])
    assert (shown["beneficiary"], shown["purpose"]) == ("Acme", "2026 ESG report")
    listed = client.get("/v1/registry/retirements").json()
    assert [r["certificate"] for r in listed] == [retired["certificate"]]
    forged = retired["certificate"][:-1] + ("0" if retired["certificate"][-1] != "0" else "1")
    for wrong in (forged, "CR-00000009-0000000000", "not-a-certificate"):
        missing = client.get(f"/v1/registry/retirements/{wrong}")
        assert (missing.status_code, missing.json()["code"]) == (404, "not_found")

    batch = market.certified["batch"]["serial"]
    detail = client.get(f"/v1/registry/batches/{batch}")
    assert detail.status_code == 200, detail.text
    assert (detail.json()["held"]["retired"], detail.json()["held"]["company"]) == (2, 1)
    blocks = [(k["serial"], k["holder"], k["company"]) for k in detail.json()["blocks"]]
    assert blocks[:2] == [(f"{first}-1-2", "retired", ACME), (f"{first}-3-3", "company", ACME)]
    assert client.get("/v1/registry/batches/1").json()["serial"] == batch
    assert client.get(f"/v1/registry/batches/{first}-2-2").json()["serial"] == batch
    assert client.get("/v1/registry/batches/99").status_code == 404
    assert client.get("/v1/registry/batches/not-a-batch").status_code == 422

    companies = {c["uscc"]: c for c in client.get("/v1/registry/companies").json()}
    assert (companies[ACME]["held"], companies[ACME]["retired"]) == (1, 2)
    assert (companies[BETA]["held"], companies[BETA]["retired"]) == (0, 0)

    # A retry with the same key answers the same; the units are gone for good.
    again = market.acme.request(
        "POST",
        "/v1/company/retirements",
        {"units": 2, "beneficiary": "Acme", "purpose": "2026 ESG report"},
        headers=keyed("retire-1"),
    )
    assert again.json() == {**retired, "replayed": True}
    more = market.acme.request(
        "POST",
        "/v1/company/retirements",
        {"units": 2, "beneficiary": "Acme", "purpose": "2027 ESG report"},
        headers=keyed("retire-2"),
    )
    assert (more.status_code, more.json()["code"]) == (409, "insufficient_units")
    holdings = market.acme.request("GET", "/v1/company/holdings")
    assert holdings.status_code == 200, holdings.text
    assert (holdings.json()["held"], holdings.json()["retired"]) == (1, 2)


def test_companies_transfer_units_with_their_own_keys(market: Market) -> None:
    unit = market.sold["serials"][0].removesuffix("-1-3") + "-3-3"
    moved = market.acme.request(
        "POST", "/v1/company/transfers", {"to": BETA, "units": 1}, headers=keyed("to-beta")
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["company"], moved.json()["to"], moved.json()["serials"]) == (
        ACME, BETA, [unit],
    )  # fmt: skip
    assert market.beta.request("GET", "/v1/company/holdings").json()["held"] == 1
    own = market.beta.request(
        "POST", "/v1/company/transfers", {"to": BETA, "units": 1}, headers=keyed("to-self")
    )
    assert (own.status_code, own.json()["code"]) == (409, "same_company")
    back = market.beta.request(
        "POST", "/v1/company/transfers", {"to": ACME, "units": 1}, headers=keyed("back")
    )
    assert back.json()["serials"] == [unit]
    assert market.acme.request("GET", "/v1/company/holdings").json()["held"] == 1


def test_only_a_company_key_acts_for_a_company(market: Market) -> None:
    # A member platform's key is not a company's, and a company's is not a platform's.
    as_platform = market.amap.request("GET", "/v1/company/holdings")
    assert (as_platform.status_code, as_platform.json()["code"]) == (401, "unknown_key")
    spend = market.amap.request(
        "POST",
        "/v1/company/retirements",
        {"units": 1, "beneficiary": "amap", "purpose": "free units"},
        headers=keyed("platform-1"),
    )
    assert (spend.status_code, spend.json()["code"]) == (401, "unknown_key")
    as_company = market.acme.request("GET", "/v1/receipts/r0-0")
    assert (as_company.status_code, as_company.json()["code"]) == (401, "unknown_key")
    assert market.amap.request("GET", "/v1/receipts/r0-0").status_code == 200
    unsigned = market.client.get("/v1/company/holdings")
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "unsigned")
    with pytest.raises(NotFoundError):
        credentials.issue_company(market.app, "91110108MA01G0002" + uscc_check("91110108MA01G0002"))
    # A key issued anew revokes the old one at once.
    old = market.beta.creds
    market.beta.creds = credentials.issue_company(market.app, BETA)
    stale = Platform(market.client, old).request("GET", "/v1/company/holdings")
    assert (stale.status_code, stale.json()["code"]) == (401, "revoked_key")
    assert market.beta.request("GET", "/v1/company/holdings").status_code == 200


def _citizen(record_id: str) -> str:
    """The phone number of a record's citizen (`r<citizen>-<n>`)."""
    return CITIZENS[int(record_id[1 : record_id.index("-")])]


def _credits(market: Market, record_id: str, scopes: list[str]) -> tuple[str, dict[str, int]]:
    """A token of amap's, with these scopes, for the citizen of a record, and the citizen's
    credits by record id."""
    token = builders.citizen_token(market.app, _citizen(record_id), "amap", scopes)
    page = market.client.get("/v1/me/history?limit=100", headers=staff(token))
    assert page.status_code == 200, page.text
    return token, {
        m["record_id"]: m["entry_id"] for m in page.json()["items"] if m["kind"] == "credit"
    }


def test_a_citizen_proves_a_credit_is_in_the_batch(market: Market) -> None:
    client = market.client
    record = market.in_batch[7]
    token, credits = _credits(market, record, ["history"])
    proved = client.get(f"/v1/me/credits/{credits[record]}/proof", headers=staff(token))
    assert proved.status_code == 200, proved.text
    [proof] = proved.json()
    assert (proof["leaf"]["platform"], proof["leaf"]["record_id"]) == ("amap", record)
    assert (proof["leaf_index"], proof["tree_size"]) == (7, len(market.in_batch))
    published = client.get("/v1/registry/batches").json()
    [batch] = [b for b in published if b["serial"] == proof["batch"]]
    assert registry.check_proof(proof, batch["root"]) is None
    altered = {**proof, "leaf": {**proof["leaf"], "grams": proof["leaf"]["grams"] + 1}}
    assert registry.check_proof(altered, batch["root"]) is not None

    # Another citizen's credit left in the pool: no proof yet; and not one of this account.
    waiting = next(r for r in market.pooled if _citizen(r) != _citizen(record))
    later, pooled = _credits(market, waiting, ["history"])
    answer = client.get(f"/v1/me/credits/{pooled[waiting]}/proof", headers=staff(later))
    assert (answer.status_code, answer.json()["code"]) == (404, "not_found")
    other = client.get(f"/v1/me/credits/{credits[record]}/proof", headers=staff(later))
    assert (other.status_code, other.json()["code"]) == (404, "not_found")
    # A token holding only `balance` may not ask.
    balance = builders.citizen_token(market.app, _citizen(record), "amap", ["balance"])
    refused = client.get(f"/v1/me/credits/{credits[record]}/proof", headers=staff(balance))
    assert (refused.status_code, refused.json()["code"]) == (403, "insufficient_scope")


def test_a_reversed_certified_credit_draws_on_the_buffer(market: Market) -> None:
    record = market.in_batch[0]
    _, credits = _credits(market, record, ["history:all"])
    entry = credits[record]
    body = {"entry": entry, "reason": "the recycler's scale was forged"}
    reversed_ = market.client.post(
        "/v1/market/reversals", json=body, headers=staff(market.operator, "reverse-1")
    )
    assert reversed_.status_code == 200, reversed_.text
    [draw] = reversed_.json()["draws"]
    assert draw["batch"] == market.certified["batch"]["serial"]
    assert (draw["drawn_g"], draw["shortfall_g"]) == (draw["grams"], 0)
    assert draw["units_cancelled"] == 1  # the buffer no longer holds a whole unit's grams
    again = market.client.post(
        "/v1/market/reversals", json=body, headers=staff(market.operator, "reverse-1")
    )
    assert again.json() == {**reversed_.json(), "replayed": True}
    twice = market.client.post(
        "/v1/market/reversals", json=body, headers=staff(market.operator, "reverse-2")
    )
    assert (twice.status_code, twice.json()["code"]) == (409, "already_reversed")
    seen = market.client.get("/v1/market/shortfalls", headers=staff(market.regulator)).json()
    [buffer] = seen["batches"]
    assert (buffer["drawn_g"], buffer["shortfall_g"], buffer["cancelled"]) == (draw["grams"], 0, 1)
    assert [d["operation"] for d in seen["draws"]] == [reversed_.json()["operation"]]
    assert seen["shortfall_g"] == 0
