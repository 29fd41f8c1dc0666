"""What people see of a restatement, on SQLite and PostgreSQL: a citizen's history shows the
`restated` movement with the credits it adjusts, each with how it was computed under both
versions (API, dashboard, CLI); the regulator's dashboard and the oversight API list the
restatement with its totals.

A Shenzhen metro ride of 5 km is credited under sz-public-transit@1.0.0 (46.8 g/pkm: 234 g),
then restated to @1.0.1, which corrects it (46.7 g/pkm: 233 g): 1 g goes back."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from typer.testing import CliRunner

from puhui.adapters.methodology_files import load_catalogue
from puhui.bootstrap import App
from puhui.domain.methodology import Catalogue
from puhui.entrypoints import cli
from puhui.entrypoints.dashboard import COOKIES
from puhui.service import admin, ingest, oversight, queries, restatement
from tests.builders import citizen_session, citizen_token, trip

PHONE = "13800138000"
OLD, NEW = "sz-public-transit@1.0.0", "sz-public-transit@1.0.1"


@pytest.fixture
def restated(app: App) -> App:
    """A Shenzhen metro ride credited under 1.0.0 (and a Beijing bus ride, untouched), then
    restated to 1.0.1."""
    full = load_catalogue()
    old = Catalogue([m for m in full.methodologies if m.ref != NEW], full.factors, full.regions)
    app.__dict__["catalogue"] = old
    admin.add_platform(app, "amap")
    admin.add_platform(app, "didi")
    ingest.ingest_records(
        app,
        "amap",
        [
            trip("m1", region="440300", scene="metro"),
            trip("b1", start="2026-10-02T08:00:00+08:00", end="2026-10-02T08:20:00+08:00"),
        ],
    )
    app.__dict__["catalogue"] = full
    done = restatement.restate(app, "sz-public-transit", "1.0.1", "operator:test", dry_run=False)
    assert (done.credits, done.delta_g, done.posted_g, done.finished) == (1, -1, -1, True)
    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def credit_entry(items: list[dict[str, Any]], record_id: str) -> int:
    return next(
        int(m["entry_id"]) for m in items if m["kind"] == "credit" and m["record_id"] == record_id
    )


def test_the_history_shows_the_restated_movement_and_the_credit_it_adjusts(
    restated: App, client: TestClient
) -> None:
    token = citizen_token(restated, PHONE)
    page = client.get("/v1/me/history", headers=bearer(token))
    assert page.status_code == 200, page.text
    items = page.json()["items"]
    assert [m["kind"] for m in items] == ["restated", "credit", "credit"]
    movement = items[0]
    assert movement["amount"] == -1
    assert (movement["platform"], movement["scene"], movement["methodology"]) == (
        "amap",
        "metro",
        NEW,
    )
    adjustment = movement["adjustment"]
    assert adjustment["methodology_before"] == [OLD]
    assert adjustment["methodology"] == NEW
    assert adjustment["delta_g"] == -1
    [credit] = adjustment["credits"]
    assert credit == {
        "entry_id": credit_entry(items, "m1"),
        "platform": "amap",
        "record_id": "m1",
        "scene": "metro",
        "methodology_before": OLD,
        "methodology": NEW,
        "grams_before": 234,
        "grams": 233,
        "happened_at": "2026-10-01T00:00:00Z",
    }
    assert all(m["adjustment"] is None for m in items[1:])

    # A platform reading only its own records sees it (it is amap's); another platform's record
    # ids stay hidden from a platform reading every one.
    own = citizen_token(restated, PHONE, "amap", ["history"])
    assert client.get("/v1/me/history", headers=bearer(own)).json()["items"][0]["kind"] == (
        "restated"
    )
    other = citizen_token(restated, PHONE, "didi", ["history"])
    assert client.get("/v1/me/history", headers=bearer(other)).json()["items"] == []
    every = citizen_token(restated, PHONE, "didi", ["history:all"])
    seen = client.get("/v1/me/history", headers=bearer(every)).json()["items"][0]
    assert seen["adjustment"]["credits"][0]["record_id"] is None
    assert seen["adjustment"]["credits"][0]["entry_id"] == credit["entry_id"]

    # The account's view, as `puhui account show` reads it.
    view = queries.account(restated, PHONE)
    bus = next(h.amount_g for h in view.history if h.record_id == "b1")
    assert view.balance_g == 233 + bus
    line = view.history[0]
    assert (line.kind, line.amount_g, line.methodology) == ("restated", -1, NEW)
    assert line.adjustment is not None
    assert [(c.record_id, c.grams_before, c.grams) for c in line.adjustment.credits] == [
        ("m1", 234, 233)
    ]


def test_the_credit_explanation_returns_both_versions(restated: App, client: TestClient) -> None:
    token = citizen_token(restated, PHONE)
    items = client.get("/v1/me/history", headers=bearer(token)).json()["items"]
    metro = credit_entry(items, "m1")
    explained = client.get(f"/v1/me/credits/{metro}", headers=bearer(token))
    assert explained.status_code == 200, explained.text
    e = explained.json()
    # As received: the original calculation, unchanged.
    assert e["methodology"] == OLD
    assert e["reduction_per_unit_g"] == "46.8"
    assert [f["value"] for f in e["factors"]] == ["46.8"]
    assert e["reduction_g"] == 234
    # And as restated.
    [again] = e["restatements"]
    assert again["methodology"] == NEW
    assert again["reduction_per_unit_g"] == "46.7"
    assert [f["value"] for f in again["factors"]] == ["46.7"]
    assert again["factors"][0]["evidence"] == "FOUND"
    assert again["factors"][0]["region_used"] == "440300"
    assert (again["grams_before"], again["grams"], again["computed_g"]) == (234, 233, 233)
    assert again["baseline_formula"] == e["baseline_formula"]
    assert again["at"].startswith("2026-11-01T00:00:00")

    # A credit never restated has none.
    bus = credit_entry(items, "b1")
    assert client.get(f"/v1/me/credits/{bus}", headers=bearer(token)).json()["restatements"] == []


def test_the_citizen_dashboard_shows_the_adjustment_and_both_calculations(
    restated: App, client: TestClient
) -> None:
    client.cookies.set(COOKIES["citizen"], citizen_session(restated, PHONE))
    page = client.get("/dashboard/me?lang=en").text
    row = re.search(r"<tr>((?:(?!</tr>).)*Restated.*?)</tr>", page, re.S)
    assert row, page
    shown = " ".join(row.group(1).split())
    assert "-1 g" in shown
    assert f"{OLD} → {NEW}" in shown
    assert "234 g → 233 g" in shown
    link = re.search(r'href="(/dashboard/me/credits/[0-9]+)"', shown)
    assert link, shown
    assert "核算方法更正" in client.get("/dashboard/me?lang=zh-CN").text

    credit = client.get(link.group(1) + "?lang=en")
    assert credit.status_code == 200
    both = " ".join(credit.text.split())
    assert f'data-testid="methodology">{OLD}' in both
    assert "46.8 gCO2/pkm" in both
    assert f'data-testid="restated-methodology">{NEW}' in both
    assert "46.7 gCO2/pkm" in both
    assert "before 234 g → now 233 g" in both


def test_the_cli_shows_the_adjustment_and_both_calculations(restated: App) -> None:
    where = ["--db", restated.engine.url.render_as_string(hide_password=False)]
    where += ["--key-file", str(restated.settings.key_file)]
    runner = CliRunner()
    shown = runner.invoke(cli.app, ["account", "show", PHONE, "--wide", *where])
    assert shown.exit_code == 0, shown.output
    out = " ".join(shown.output.split())
    assert f"entry 3 restated: {OLD} → {NEW} (restatement 1), 1 credit(s), -1 g" in out
    assert f"amap m1 (metro, 2026-10-01 08:00): 234 g under {OLD} → 233 g under {NEW}" in out
    explained = runner.invoke(cli.app, ["methodology", "explain", "m1", "--platform", "amap",
                                        *where])  # fmt: skip
    assert explained.exit_code == 0, explained.output
    out = " ".join(explained.output.split())
    assert "metro_reduction_citymix = 46.8 gCO2/pkm" in out
    assert "credited: 234 g" in out
    assert out.index("46.8 gCO2/pkm") < out.index(f"methodology {NEW}")
    assert "metro_reduction_citymix = 46.7 gCO2/pkm" in out
    assert "ER = 5.000 × 46.7 = 233.5000 g, rounded down: 233 g" in out
    assert "credited: 234 g → 233 g" in out
    as_json = runner.invoke(cli.app, ["methodology", "explain", "m1", "--platform", "amap",
                                      "--json", *where])  # fmt: skip
    assert as_json.exit_code == 0, as_json.output
    assert '"grams": 233' in as_json.output


def test_the_regulator_sees_the_restatement_with_its_totals(
    restated: App, client: TestClient
) -> None:
    regulator = oversight.issue_staff_token(restated, "auditor", oversight.Role.REGULATOR).token
    found = client.get("/v1/oversight/restatements", headers=bearer(regulator))
    assert found.status_code == 200, found.text
    [r] = found.json()
    assert r["methodology"] == NEW
    assert r["superseded"] == [OLD]
    assert (r["credits"], r["increased_g"], r["decreased_g"]) == (1, 0, 1)
    assert (r["posted_g"], r["shortfall_g"]) == (-1, 0)
    assert r["started_at"].startswith("2026-11-01T00:00:00")
    assert r["finished_at"] is not None
    assert client.get("/v1/oversight/restatements").status_code == 401
    citizen = citizen_token(restated, PHONE)
    assert client.get("/v1/oversight/restatements", headers=bearer(citizen)).status_code == 401

    client.cookies.set(COOKIES["staff"], regulator)
    page = client.get("/dashboard/regulator?lang=en")
    assert page.status_code == 200
    row = re.search(r'<tr data-restatement="1"[^>]*>(.*?)</tr>', page.text, re.S)
    assert row, page.text
    cells = [c.strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row.group(1), re.S)]
    assert cells[:7] == [NEW, OLD, "1", "0", "1", "-1", "0"]
    assert cells[7].startswith("2026-11-01 08:00")  # China time
    assert "Restatements" in page.text
    assert "核算方法更正" in client.get("/dashboard/regulator?lang=zh-CN").text

    # One stopped halfway shows as resumable.
    with restated.engine.begin() as conn:
        conn.execute(text("update restatements set finished_at = null"))
    [r] = client.get("/v1/oversight/restatements", headers=bearer(regulator)).json()
    assert r["finished_at"] is None
    again = client.get("/dashboard/regulator?lang=en").text
    assert re.search(r'data-testid="restatement-finished"><span class="badge">resumable', again)
