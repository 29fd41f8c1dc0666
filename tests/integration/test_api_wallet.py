"""Personal carbon accounts over HTTP, on SQLite and PostgreSQL: what an operator sets up, what
a citizen's app does with a citizen token, idempotency keys, refusals as problem details, and
public certificates."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from puhui.bootstrap import App
from puhui.service import oversight
from tests import builders
from tests.builders import event
from tests.integration.conftest import Platform


def bearer(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def citizen_token(app: App, subject: str) -> str:
    """A token of amap's for a citizen who granted it every scope."""
    return builders.citizen_token(app, subject)


def setup_catalogue(client: TestClient, operator: str) -> None:
    for body in (
        {"code": "green", "name": "Green points", "points_per_kg": "10", "expiry_days": 365,
         "starts_at": "2026-01-01T00:00:00+08:00"},
    ):  # fmt: skip
        response = client.post("/v1/oversight/programmes", json=body, headers=bearer(operator))
        assert response.status_code == 200, response.text
    for body in (
        {"code": "saxaul", "name": "A saxaul in Alxa", "kind": "tree", "issuer": "SEE",
         "project": "阿拉善梭梭", "price_g": 1000, "stock": 10},
        {"code": "tea", "name": "Tea", "kind": "coupon", "issuer": "cafe",
         "price_points": 5, "programme": "green", "per_citizen_limit": 1},
    ):  # fmt: skip
        response = client.post("/v1/oversight/rewards", json=body, headers=bearer(operator))
        assert response.status_code == 200, response.text
    response = client.post(
        "/v1/oversight/rewards/tea/codes",
        json={"codes": ["T-1", "T-2"]},
        headers=bearer(operator),
    )
    assert response.json() == {"added": 2, "remaining": 2}


def test_a_citizen_redeems_retires_and_gives(app: App, amap: Platform) -> None:
    client = amap.client
    operator = oversight.issue_staff_token(app, "ops", oversight.Role.OPERATOR).token
    setup_catalogue(client, operator)
    amap.submit([event("e1", subject="13800138000", quantity="20")])
    jobs = client.post("/v1/oversight/jobs", headers=bearer(operator)).json()
    assert jobs["awarded_credits"] == 1
    token = citizen_token(app, "13800138000")

    holdings = client.get("/v1/me/holdings", headers=bearer(token)).json()
    grams, points = holdings["balance_g"], holdings["points"]["green"]
    assert points == grams * 10 // 1000
    assert [r["code"] for r in client.get("/v1/rewards").json()] == ["saxaul", "tea"]

    tree = client.post(
        "/v1/me/redemptions", json={"reward": "saxaul"}, headers=bearer(token, "buy-1")
    )
    assert tree.status_code == 200, tree.text
    assert tree.json()["result"]["tree_number"] == 1
    again = client.post(
        "/v1/me/redemptions", json={"reward": "saxaul"}, headers=bearer(token, "buy-1")
    )
    assert again.json()["replayed"] is True
    assert again.json()["result"] == tree.json()["result"]
    conflict = client.post(
        "/v1/me/redemptions", json={"reward": "tea"}, headers=bearer(token, "buy-1")
    )
    assert (conflict.status_code, conflict.json()["code"]) == (409, "idempotency_conflict")
    tea = client.post("/v1/me/redemptions", json={"reward": "tea"}, headers=bearer(token, "t-1"))
    assert tea.json()["result"]["coupon_code"] == "T-1"
    limit = client.post("/v1/me/redemptions", json={"reward": "tea"}, headers=bearer(token, "t-2"))
    assert (limit.status_code, limit.json()["code"]) == (409, "limit_reached")
    missing_key = client.post("/v1/me/redemptions", json={"reward": "tea"}, headers=bearer(token))
    assert missing_key.status_code == 422

    retired = client.post(
        "/v1/me/retirements",
        json={"footprint": {"kind": "car", "amount": "10", "region": "110000"}},
        headers=bearer(token, "offset-1"),
    )
    assert retired.status_code == 200, retired.text
    result = retired.json()["result"]
    footprint = client.post(
        "/v1/footprints", json={"kind": "car", "amount": "10", "region": "110000"}
    ).json()
    assert result["retired_g"] == footprint["grams"] == result["footprint"]["grams"]
    assert any("gasoline_g_per_l" in line for line in footprint["explanation"])

    cert = client.get(f"/v1/certificates/{result['certificate']}")
    assert cert.status_code == 200
    assert cert.json()["kind"] == "retirement"
    page = client.get(f"/v1/certificates/{result['certificate']}/html")
    assert page.headers["content-type"].startswith("text/html")
    assert "https://" not in page.text
    pdf = client.get(f"/v1/certificates/{result['certificate']}/pdf")
    assert pdf.content.startswith(b"%PDF-")
    assert client.get("/v1/certificates/PH-00000001-0000000000").status_code == 404

    gift = client.post(
        "/v1/me/gifts", json={"to": "139 0013 9000", "amount": 100}, headers=bearer(token, "g-1")
    )
    assert gift.status_code == 200, gift.text
    friend = citizen_token(app, "13900139000")
    assert client.get("/v1/me/holdings", headers=bearer(friend)).json()["balance_g"] == 100
    too_much = client.post(
        "/v1/me/gifts", json={"to": "13900139000", "amount": 10**9}, headers=bearer(token, "g-2")
    )
    assert too_much.status_code == 409

    final = client.get("/v1/me/holdings", headers=bearer(token)).json()
    assert final == {
        "balance_g": grams - 1000 - result["retired_g"] - 100,
        "retired_g": result["retired_g"],
        "points": {"green": points - 5},
    }
    kinds = [o["kind"] for o in client.get("/v1/me/operations", headers=bearer(token)).json()]
    assert kinds == ["transfer", "retire", "redeem", "redeem"]
    history = client.get("/v1/me/history", headers=bearer(token)).json()["items"]
    assert [(m["kind"], m["unit"], m["programme"]) for m in history] == [
        ("transfer", "g", None),
        ("retire", "g", None),
        ("redeem", "pt", "green"),  # the tea, paid in points
        ("redeem", "g", None),
        ("award", "pt", "green"),
        ("credit", "g", None),
    ]
    assert history[0]["amount"] == -100


def test_only_operators_set_up_the_catalogue_and_reverse(app: App, amap: Platform) -> None:
    client = amap.client
    regulator = oversight.issue_staff_token(app, "auditor", oversight.Role.REGULATOR).token
    operator = oversight.issue_staff_token(app, "ops", oversight.Role.OPERATOR).token
    body = {"code": "x", "name": "X", "kind": "donation", "issuer": "fund", "price_g": 5}
    refused = client.post("/v1/oversight/rewards", json=body, headers=bearer(regulator))
    assert refused.status_code == 403
    assert client.post("/v1/oversight/rewards", json=body, headers=bearer(operator)).is_success
    twice = client.post("/v1/oversight/rewards", json=body, headers=bearer(operator))
    assert twice.status_code == 409
    bad = {**body, "code": "y", "price_points": 3}
    assert (
        client.post("/v1/oversight/rewards", json=bad, headers=bearer(operator)).status_code == 422
    )

    amap.submit([event("e1", subject="13800138000")])
    token = citizen_token(app, "13800138000")
    entry = client.get("/v1/me/history", headers=bearer(token)).json()["items"][0]["entry_id"]
    reversal: dict[str, Any] = {"entry": entry, "reason": "the receipt was forged"}
    as_regulator = client.post(
        "/v1/oversight/reversals", json=reversal, headers=bearer(regulator, "r-1")
    )
    assert as_regulator.status_code == 403
    done = client.post("/v1/oversight/reversals", json=reversal, headers=bearer(operator, "r-1"))
    assert done.status_code == 200, done.text
    assert client.get("/v1/me/holdings", headers=bearer(token)).json()["balance_g"] == 0
    again = client.post("/v1/oversight/reversals", json=reversal, headers=bearer(operator, "r-2"))
    assert (again.status_code, again.json()["code"]) == (409, "already_reversed")


def test_a_platform_runs_a_programme_of_its_own(app: App, amap: Platform) -> None:
    body = {"code": "amap-miles", "name": "高德里程", "points_per_kg": "2.5"}
    unsigned = amap.client.post("/v1/programmes", json=body)
    assert unsigned.status_code == 401
    created = amap.request("POST", "/v1/programmes", body)
    assert created.status_code == 200, created.text
    assert created.json()["platform"] == "amap"
    listed = amap.client.get("/v1/programmes").json()
    assert [(p["code"], p["platform"], p["points_per_kg"]) for p in listed] == [
        ("amap-miles", "amap", "2.5")
    ]
    assert amap.request("POST", "/v1/programmes", body).status_code == 409


def test_texts_kept_for_people_are_printable_and_certificate_ids_ascii(
    app: App, amap: Platform
) -> None:
    """A name, an issuer, a reason or a coupon code holding a control character (a NUL no
    database text may hold) is refused as invalid input; a certificate id in other digits, or
    beyond 64 bits, is simply not found."""
    client = amap.client
    operator = bearer(oversight.issue_staff_token(app, "ops", oversight.Role.OPERATOR).token)
    reward = {"code": "r1", "kind": "donation", "name": "River", "issuer": "CEPF", "price_g": 5}
    for field in ("name", "issuer", "project"):
        response = client.post(
            "/v1/oversight/rewards", json={**reward, field: "a\x00b"}, headers=operator
        )
        assert (response.status_code, response.json()["code"]) == (422, "invalid_input"), field
    coupon = {**reward, "code": "c1", "kind": "coupon"}
    assert client.post("/v1/oversight/rewards", json=coupon, headers=operator).status_code == 200
    codes = client.post(
        "/v1/oversight/rewards/c1/codes", json={"codes": ["C\x00"]}, headers=operator
    )
    assert (codes.status_code, codes.json()["code"]) == (422, "invalid_input")
    reversal = client.post(
        "/v1/oversight/reversals",
        json={"entry": 1, "reason": "fraud\x00"},
        headers={**operator, "Idempotency-Key": "k-1"},
    )
    assert (reversal.status_code, reversal.json()["code"]) == (422, "invalid_input")
    for certificate in ("PH-²-ABCDEF0123", "PH-٣-ABCDEF0123", "PH-99999999999999999999-ABCDEF0123"):
        response = client.get(f"/v1/certificates/{certificate}")
        assert (response.status_code, response.json()["code"]) == (404, "not_found"), certificate
