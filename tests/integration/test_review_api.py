"""The review queue over HTTP (spec v1.1), on SQLite and PostgreSQL: amap's metro rides in
Shenzhen in November 2026 are held until szmetro, the authority, reports them; an operator lists
them, reads one with what every source reported, releases one, rejects another and settles the
timeouts; the platform's receipts follow, the ledger verifies after each decision, the rates
count it all, a regulator reads the rates but neither the queue nor a decision, and no answer
carries an identifier of a citizen or a device."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puhui.bootstrap import App
from puhui.service import admin, credentials, ledger, oversight, queries
from tests.builders import trip
from tests.integration.conftest import Platform

# The records happen in November 2026, under the evidence policies; they are received on
# 1 December.
LATER = datetime(2026, 12, 1, tzinfo=UTC)
PHONES = {name: f"1380013{n:04d}" for n, name in enumerate(["a1", "a2", "a3", "a4", "b1"])}
DEVICE = "device-7f3a9c"


def ride(record_id: str, day: int, platform: str = "amap", **more: Any) -> dict[str, Any]:
    """A 12 km metro ride in Shenzhen at 08:00–08:30 on a day of November 2026."""
    on = f"2026-11-{day:02d}"
    fields: dict[str, Any] = {
        "platform": platform,
        "subject": PHONES.get(record_id, PHONES["a1"]),
        "scene": "metro",
        "region": "440300",
        "start": f"{on}T08:00:00+08:00",
        "end": f"{on}T08:30:00+08:00",
        "distance_km": 12,
    }
    return trip(record_id, **(fields | more))


@pytest.fixture
def later(app: App) -> App:
    app.clock = lambda: LATER
    return app


@pytest.fixture
def amap(later: App, client: TestClient) -> Platform:
    admin.add_platform(later, "amap")
    return Platform(client, credentials.issue(later, "amap"), int(LATER.timestamp()))


@pytest.fixture
def szmetro(later: App, client: TestClient) -> Platform:
    admin.add_platform(later, "szmetro")
    return Platform(client, credentials.issue(later, "szmetro"), int(LATER.timestamp()))


@pytest.fixture
def staff(later: App) -> dict[str, dict[str, str]]:
    tokens = {
        "operator": oversight.issue_staff_token(later, "ops-li", oversight.Role.OPERATOR),
        "regulator": oversight.issue_staff_token(later, "mee", oversight.Role.REGULATOR),
    }
    return {role: {"Authorization": f"Bearer {t.token}"} for role, t in tokens.items()}


@pytest.fixture
def held(later: App, amap: Platform, szmetro: Platform) -> dict[str, int]:
    """a1, a2, a3 held awaiting corroboration; szmetro's m1 (the same ride as a1, from 08:05)
    corroborates a1. The seq of each amap record."""
    sent = amap.submit([ride("a1", 2), ride("a2", 3), ride("a3", 4)])
    assert sent.status_code == 200, sent.text
    receipts = sent.json()["receipts"]
    assert [(r["status"], r["reason"], r["reduction_g"]) for r in receipts] == [
        ("held", "awaiting_corroboration", 560)
    ] * 3
    assert amap.request("GET", "/v1/receipts/a1").json()["decided_at"] is None
    m1 = ride("m1", 2, platform="szmetro", start="2026-11-02T08:05:00+08:00")
    corroborating = szmetro.submit([m1]).json()["receipts"]
    assert [(r["status"], r["reason"]) for r in corroborating] == [
        ("duplicate", "duplicate_overlap")
    ]
    pages = amap.request("GET", "/v1/receipts").json()["items"]
    return {r["record_id"]: r["seq"] for r in pages}


def _clean(response: Any) -> Any:
    """The answer's JSON, checked to name no citizen, no device."""
    text = response.text
    for phone in PHONES.values():
        assert phone not in text
    assert DEVICE not in text
    assert "pseudonym" not in text
    return response.json()


def test_an_operator_reviews_held_records(
    later: App,
    client: TestClient,
    amap: Platform,
    held: dict[str, int],
    staff: dict[str, dict[str, str]],
) -> None:
    ops, mee = staff["operator"], staff["regulator"]

    # The corroborated ride was credited at once; its receipt says when.
    a1 = amap.request("GET", "/v1/receipts/a1").json()
    assert (a1["status"], a1["reason"], a1["reduction_g"]) == ("credited", "corroborated", 560)
    assert datetime.fromisoformat(a1["decided_at"]) == LATER
    assert ledger.verify(later) == []

    # The queue: the two rides still waiting, oldest first, each with why.
    page = _clean(client.get("/v1/oversight/review", headers=ops))
    assert [h["record_id"] for h in page["items"]] == ["a2", "a3"]
    first = page["items"][0]
    assert first["seq"] == held["a2"]
    assert (first["platform"], first["scene"], first["region"]) == ("amap", "metro", "440300")
    assert (first["status"], first["grams"], first["reduction_g"]) == ("held", 560, 560)
    assert first["reasons"] == ["awaiting_corroboration"]
    assert first["policy"] == "sz-metro"
    assert "szmetro" in first["evidence"]["awaiting_corroboration"]["why"]
    assert first["findings"][0]["code"] == "awaiting_corroboration"
    assert first["start"] == "2026-11-03T08:00:00+08:00"
    assert first["amount"] in ("12.000", 12)
    assert first["unit"] == "km"
    assert datetime.fromisoformat(first["until"]) == LATER + timedelta(days=7)
    assert first["decided_at"] is None
    assert page["next_after"] is None

    # Filters and the cursor.
    def seqs(query: str) -> list[int]:
        answer = client.get(f"/v1/oversight/review?{query}", headers=ops)
        assert answer.status_code == 200, answer.text
        return [h["seq"] for h in answer.json()["items"]]

    assert seqs("state=all") == [held["a1"], held["a2"], held["a3"]]
    assert seqs("state=decided") == [held["a1"]]
    assert seqs("platform=szmetro") == []
    assert seqs("platform=amap&reason=awaiting_corroboration&scene=metro&region=4403") == [
        held["a2"],
        held["a3"],
    ]
    assert seqs("reason=velocity") == []
    assert seqs("region=110000") == []
    assert seqs("scene=bus") == []
    one = client.get("/v1/oversight/review?limit=1", headers=ops).json()
    assert [h["seq"] for h in one["items"]] == [held["a2"]]
    assert one["next_after"] == held["a2"]
    assert seqs(f"after={one['next_after']}") == [held["a3"]]
    for bad in ("limit=0", "limit=100000", "reason=capped", "region=44x", "state=maybe"):
        assert client.get(f"/v1/oversight/review?{bad}", headers=ops).status_code == 422, bad

    # One record with every source's evidence: szmetro's record of the same ride.
    shown = _clean(client.get(f"/v1/oversight/review/{held['a1']}", headers=ops))
    assert shown["held"]["outcome_reason"] == "corroborated"
    assert shown["held"]["corroborated_by"] == {"platform": "szmetro", "record_id": "m1"}
    assert shown["corroboration"]["record_id"] == "m1"
    assert [(r["platform"], r["record_id"], r["status"], r["duplicate"])
            for r in shown["related"]] == [("szmetro", "m1", "duplicate", True)]  # fmt: skip
    assert shown["device_citizens"] is None
    missing = client.get("/v1/oversight/review/999999", headers=ops)
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")

    # A regulator may not read the queue nor decide.
    for method, path, body in [
        ("GET", "/v1/oversight/review", None),
        ("GET", f"/v1/oversight/review/{held['a2']}", None),
        ("POST", "/v1/oversight/review/decisions",
         {"seqs": [held["a2"]], "decision": "release", "reason": "fine"}),
        ("POST", "/v1/oversight/review/expire", None),
    ]:  # fmt: skip
        refused = client.request(method, path, json=body, headers=mee)
        assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), path
        assert client.request(method, path, json=body).status_code == 401
    assert amap.request("GET", "/v1/receipts/a2").json()["status"] == "held"

    # A decision needs a reason.
    for body in (
        {"seqs": [held["a2"]], "decision": "release"},
        {"seqs": [held["a2"]], "decision": "release", "reason": "   "},
    ):
        refused = client.post("/v1/oversight/review/decisions", json=body, headers=ops)
        assert refused.status_code == 422
        assert "a decision needs a reason" in refused.json()["detail"]
    for body in (
        {"seqs": [], "decision": "release", "reason": "x"},
        {"seqs": [held["a2"]], "decision": "maybe", "reason": "x"},
        {"seqs": [0], "decision": "release", "reason": "x"},
        {"seqs": [2**63], "decision": "release", "reason": "x"},
        {"seqs": [held["a2"]], "decision": "release", "reason": "x" * 1001},
        {"seqs": [held["a2"]], "decision": "release", "reason": "a\x00b"},
    ):
        answer = client.post("/v1/oversight/review/decisions", json=body, headers=ops)
        assert answer.status_code == 422, body
    assert ledger.verify(later) == []

    # Release a2 (an unknown record and a decided one are skipped).
    released = client.post(
        "/v1/oversight/review/decisions",
        json={
            "seqs": [held["a2"], 999999, held["a1"], held["a2"]],
            "decision": "release",
            "reason": "the citizen's card taps confirm the ride",
        },
        headers=ops,
    )
    assert released.status_code == 200, released.text
    assert released.json() == {"decided": [held["a2"]], "skipped": [999999, held["a1"]]}
    assert ledger.verify(later) == []
    a2 = amap.request("GET", "/v1/receipts/a2").json()
    assert (a2["status"], a2["reason"], a2["reduction_g"]) == ("credited", "released", 560)
    assert datetime.fromisoformat(a2["decided_at"]) == LATER
    assert queries.account(later, PHONES["a2"]).balance_g == 560

    # Reject a3; deciding it again changes nothing.
    rejected = client.post(
        "/v1/oversight/review/decisions",
        json={"seqs": [held["a3"]], "decision": "reject", "reason": "no such trip at szmetro"},
        headers=ops,
    )
    assert rejected.json() == {"decided": [held["a3"]], "skipped": []}
    assert ledger.verify(later) == []
    again = client.post(
        "/v1/oversight/review/decisions",
        json={"seqs": [held["a3"]], "decision": "release", "reason": "second thoughts"},
        headers=ops,
    )
    assert again.json() == {"decided": [], "skipped": [held["a3"]]}
    a3 = amap.request("GET", "/v1/receipts/a3").json()
    assert (a3["status"], a3["reason"], a3["reduction_g"]) == ("rejected", "rejected_on_review", 0)
    assert a3["decided_at"] is not None
    assert ledger.verify(later) == []

    decided = _clean(client.get("/v1/oversight/review?state=decided", headers=ops))["items"]
    by_seq = {h["seq"]: h for h in decided}
    assert (by_seq[held["a2"]]["decided_by"], by_seq[held["a2"]]["note"]) == (
        "ops-li",
        "the citizen's card taps confirm the ride",
    )
    assert by_seq[held["a3"]]["outcome"] == "rejected"
    assert client.get("/v1/oversight/review", headers=ops).json()["items"] == []

    # The CSV export carries when each held record was decided.
    exported = {r["record_id"]: r for r in queries.receipts(later, "amap")}
    assert exported["a3"]["decided_at"].startswith("2026-12-01T00:00:00")
    assert list(exported["a3"])[-1] == "decided_at"

    # The rates, for operators and regulators alike.
    rates = {r["platform"]: r for r in client.get("/v1/oversight/review-rates", headers=mee).json()}
    assert {k: rates["amap"][k] for k in (
        "records", "held", "open", "corroborated", "released", "rejected_on_review",
        "not_corroborated", "reviewed", "flagged")} == {
        "records": 3, "held": 3, "open": 0, "corroborated": 1, "released": 1,
        "rejected_on_review": 1, "not_corroborated": 0, "reviewed": 2, "flagged": False,
    }  # fmt: skip
    assert rates["amap"]["rejected_share"] == 0.5
    assert (rates["szmetro"]["records"], rates["szmetro"]["held"]) == (1, 0)
    assert client.get("/v1/oversight/review-rates", headers=ops).status_code == 200
    assert client.get("/v1/oversight/review-rates").status_code == 401


def test_the_policy_timeout_rejects_what_no_authority_reported(
    later: App, client: TestClient, amap: Platform, staff: dict[str, dict[str, str]]
) -> None:
    amap.submit([ride("a4", 20)])
    ops = staff["operator"]
    expired = client.post("/v1/oversight/review/expire", headers=ops)
    assert expired.json() == {"ended": []}  # its window is not over yet
    later.clock = lambda: LATER + timedelta(days=8)
    amap.timestamp = int((LATER + timedelta(days=8)).timestamp())
    [seq] = [h["seq"] for h in client.get("/v1/oversight/review", headers=ops).json()["items"]]
    assert client.post("/v1/oversight/review/expire", headers=ops).json() == {"ended": [seq]}
    a4 = amap.request("GET", "/v1/receipts/a4").json()
    assert (a4["status"], a4["reason"], a4["reduction_g"]) == ("rejected", "not_corroborated", 0)
    assert datetime.fromisoformat(a4["decided_at"]) == LATER + timedelta(days=8)
    assert ledger.verify(later) == []
    rates = {r["platform"]: r for r in client.get("/v1/oversight/review-rates", headers=ops).json()}
    assert (rates["amap"]["not_corroborated"], rates["amap"]["reviewed"]) == (1, 0)
    assert rates["amap"]["rejected_share"] is None


def test_a_shared_device_is_counted_never_shown(
    later: App, client: TestClient, amap: Platform, staff: dict[str, dict[str, str]]
) -> None:
    """Bus rides in Beijing (no policy) of four citizens on one device: the fourth is held as
    device_shared, and its review says how many citizens the device served, not which."""
    rides = [
        trip(f"d{n}", subject=f"1390013{n:04d}", device=DEVICE,
             start=f"2026-11-1{n}T08:00:00+08:00", end=f"2026-11-1{n}T08:20:00+08:00")
        for n in range(4)
    ]  # fmt: skip
    receipts = amap.submit(rides).json()["receipts"]
    assert [r["status"] for r in receipts] == ["credited"] * 3 + ["held"]
    assert receipts[3]["reason"] == "device_shared"
    ops = staff["operator"]
    [item] = _clean(client.get("/v1/oversight/review?reason=device_shared", headers=ops))["items"]
    assert item["record_id"] == "d3"
    assert item["evidence"]["device_shared"]["measured"][0] == 4
    assert "4 citizens" in item["findings"][0]["why"]
    shown = _clean(client.get(f"/v1/oversight/review/{item['seq']}", headers=ops))
    assert shown["device_citizens"] == 4
    assert shown["device_window_hours"] == 168
    assert shown["related"] == []  # no other record of this citizen within 12 hours
    assert DEVICE not in json.dumps(shown)
    rejected = client.post(
        "/v1/oversight/review/decisions",
        json={"seqs": [item["seq"]], "decision": "reject", "reason": "a shared handset"},
        headers=ops,
    )
    assert rejected.json()["decided"] == [item["seq"]]
    assert ledger.verify(later) == []
