"""The platform API through the ASGI application, on SQLite and PostgreSQL: signed submissions,
receipts, refusals, limits, and one platform never seeing another's records."""

from __future__ import annotations

import json
import logging
import secrets
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puhui.bootstrap import App
from puhui.domain import signing
from puhui.entrypoints.api import MAX_BATCH, MAX_BODY_BYTES, create_app
from puhui.service import credentials, oversight, queries
from tests import builders
from tests.builders import event, trip
from tests.conftest import NOW
from tests.integration.conftest import Platform


def statuses(response: Any) -> list[tuple[str | None, str, str, int]]:
    assert response.status_code == 200, response.text
    return [
        (r["record_id"], r["status"], r["reason"], r["reduction_g"])
        for r in response.json()["receipts"]
    ]


def test_a_signed_batch_is_answered_with_one_receipt_per_record(amap: Platform) -> None:
    response = amap.submit([trip("t1"), event("e1"), trip("bad", region="999999")])
    assert statuses(response) == [
        ("t1", "credited", "", 1079),
        ("e1", "credited", "", 549),
        ("bad", "rejected", "unknown_region", 0),
    ]
    assert response.json()["credited_g"] == 1079 + 549
    assert response.headers["x-request-id"]


def test_a_resent_batch_returns_the_same_receipts_and_credits_nothing(amap: Platform) -> None:
    records = [trip("t1"), event("e1")]
    first = amap.submit(records)
    again = amap.submit(records)
    assert statuses(again) == statuses(first)
    assert again.json()["credited_g"] == 0


def test_a_bad_record_is_rejected_and_the_rest_of_the_batch_goes_on(amap: Platform) -> None:
    response = amap.submit(
        [
            trip("t1", platform="didi"),
            {"record_id": "nested", "distance_km": {"km": 5}},
            "not an object",  # type: ignore[list-item]
            trip("t2", start="2026-10-02T08:00:00+08:00", end="2026-10-02T08:20:00+08:00"),
        ]
    )
    if response.status_code == 422:
        pytest.fail(f"one bad item refused the whole batch: {response.text}")
    got = statuses(response)
    assert got[0] == ("t1", "rejected", "platform_mismatch", 0)
    assert got[1][1] == "rejected"
    assert got[3] == ("t2", "credited", "", 1079)


def test_receipts_are_read_back_by_record_id_and_by_page(amap: Platform) -> None:
    amap.submit([trip("t1"), event("e1"), event("e2", ref="R-2")])
    one = amap.request("GET", "/v1/receipts/e1")
    assert one.status_code == 200, one.text
    assert (one.json()["status"], one.json()["reduction_g"]) == ("credited", 549)

    first = amap.request("GET", "/v1/receipts?limit=2")
    assert first.status_code == 200, first.text
    page = first.json()
    assert [r["record_id"] for r in page["items"]] == ["t1", "e1"]
    rest = amap.request("GET", f"/v1/receipts?limit=2&after={page['next_after']}").json()
    assert [r["record_id"] for r in rest["items"]] == ["e2"]
    assert rest["next_after"] is None

    window = amap.request("GET", "/v1/receipts?received_from=2026-11-01T09:00:00%2B08:00").json()
    assert [r["record_id"] for r in window["items"]] == []
    window = amap.request("GET", "/v1/receipts?received_from=2026-11-01T07:59:59%2B08:00").json()
    assert len(window["items"]) == 3


def test_a_platform_never_reads_another_platforms_receipts(amap: Platform, didi: Platform) -> None:
    amap.submit([trip("t1")])
    didi.submit([event("d1", platform="didi")])
    assert didi.request("GET", "/v1/receipts/t1").status_code == 404
    assert amap.request("GET", "/v1/receipts/d1").status_code == 404
    assert [r["record_id"] for r in didi.request("GET", "/v1/receipts").json()["items"]] == ["d1"]
    assert [r["record_id"] for r in amap.request("GET", "/v1/receipts").json()["items"]] == ["t1"]


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ({"drop": signing.HEADER_SIGNATURE}, "unsigned"),
        ({signing.HEADER_SIGNATURE: "0" * 64}, "bad_signature"),
        ({signing.HEADER_SIGNATURE: "xyz"}, "malformed_signature_header"),
        ({signing.HEADER_KEY: "pk_" + "0" * 24}, "unknown_key"),
        ({signing.HEADER_NONCE: "short"}, "malformed_signature_header"),
        # Header bytes are Latin-1: `²` is a digit to `str.isdigit`, not to the signature.
        ({signing.HEADER_TIMESTAMP: "²".encode("latin-1")}, "malformed_signature_header"),
    ],
    ids=["missing", "wrong", "malformed", "unknown-key", "short-nonce", "superscript"],
)
def test_a_request_not_signed_by_a_platform_is_refused(
    amap: Platform, tamper: dict[str, Any], code: str
) -> None:
    body = json.dumps({"records": [trip("t1")]}).encode()
    headers = signing.signed_headers(
        amap.creds.key_id, amap.creds.secret, "POST", "/v1/records", body, amap.timestamp,
        secrets.token_hex(16),
    )  # fmt: skip
    if "drop" in tamper:
        del headers[tamper["drop"]]
    else:
        headers.update(tamper)
    response = amap.client.post("/v1/records", content=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == code
    assert problem["type"] == f"urn:puhui:problem:{code}"
    assert amap.request("GET", "/v1/receipts/t1").status_code == 404


def test_a_signature_covers_the_body(amap: Platform) -> None:
    body = json.dumps({"records": [trip("t1")]}).encode()
    headers = signing.signed_headers(
        amap.creds.key_id, amap.creds.secret, "POST", "/v1/records", body, amap.timestamp,
        secrets.token_hex(16),
    )  # fmt: skip
    other = json.dumps({"records": [trip("t1", distance_km=50)]}).encode()
    response = amap.client.post("/v1/records", content=other, headers=headers)
    assert response.json()["code"] == "bad_signature"


def test_stale_timestamps_and_replayed_nonces_are_refused(amap: Platform) -> None:
    amap.timestamp -= signing.MAX_SKEW_S + 1
    assert amap.submit([trip("t1")]).json()["code"] == "stale_timestamp"
    amap.timestamp = int(NOW.timestamp())
    nonce = secrets.token_hex(16)
    assert amap.submit([trip("t1")], nonce=nonce).status_code == 200
    replay = amap.submit([trip("t1")], nonce=nonce)
    assert (replay.status_code, replay.json()["code"]) == (401, "replayed_nonce")


def test_a_rotated_key_stops_working_at_once(app: App, amap: Platform) -> None:
    old = amap.creds
    amap.creds = credentials.issue(app, "amap")
    assert amap.submit([trip("t1")]).status_code == 200
    amap.creds = old
    assert amap.submit([trip("t2")]).json()["code"] == "revoked_key"


def test_a_key_rotated_after_use_is_refused_where_its_nonce_is_claimed(
    app: App, amap: Platform
) -> None:
    """The server remembers keys it verified; a key revoked meanwhile is still refused at once,
    for submissions (claimed with their group) and for other signed requests alike, and what it
    sent is not stored."""
    assert amap.submit([trip("t1")]).status_code == 200
    assert amap.request("GET", "/v1/receipts/t1").status_code == 200
    old = amap.creds
    new = credentials.issue(app, "amap")
    refused = amap.submit([trip("t2")])
    assert (refused.status_code, refused.json()["code"]) == (401, "revoked_key")
    assert amap.request("GET", "/v1/receipts/t1").json()["code"] == "revoked_key"
    amap.creds = new
    assert amap.request("GET", "/v1/receipts/t2").status_code == 404
    assert amap.submit([trip("t3")]).status_code == 200
    amap.creds = old
    assert amap.submit([trip("t4")]).json()["code"] == "revoked_key"


def test_the_database_keeps_only_a_digest_of_the_secret(app: App, amap: Platform) -> None:
    from sqlalchemy import text

    with app.engine.connect() as conn:
        rows = conn.execute(text("select key_id, secret_digest from credentials")).all()
    assert rows == [(amap.creds.key_id, signing.secret_digest(amap.creds.secret))]
    assert amap.creds.secret not in str(rows)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"records": []}, "invalid_request"),
        ({"records": [{}] * (MAX_BATCH + 1)}, "invalid_request"),
        ({"records": [trip("t1")], "extra": 1}, "invalid_request"),
        ([trip("t1")], "invalid_request"),
    ],
    ids=["empty", "too-many", "unknown-field", "not-an-object"],
)
def test_a_malformed_submission_is_a_client_error(amap: Platform, body: Any, code: str) -> None:
    response = amap.request("POST", "/v1/records", body)
    assert response.status_code == 422, response.text
    assert response.json()["code"] == code


def test_a_body_that_is_not_json_is_a_client_error(amap: Platform) -> None:
    response = amap.request("POST", "/v1/records", raw=b"{not json")
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_request"


@pytest.mark.parametrize("length", [str(64 * 1024 * 1024).encode(), "²".encode("latin-1")])
def test_an_oversized_body_is_refused_before_it_is_read(amap: Platform, length: bytes) -> None:
    response = amap.client.post("/v1/records", content=b"{}", headers={"content-length": length})
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"


def _metric(client: TestClient, line: str) -> float:
    """The value of one sample of /metrics (0 when it has none yet)."""
    for sample in client.get("/metrics").text.splitlines():
        if sample.startswith(line + " "):
            return float(sample.rsplit(" ", 1)[1])
    return 0.0


def test_a_chunked_body_over_the_limit_is_refused_counted_and_logged(
    amap: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    """A chunked body declares no length: it is refused as soon as it is read past 16 MiB,
    and the refusal is counted and logged like any answer."""
    sample = 'puhui_http_requests_total{method="POST",route="/v1/records",status="413"}'
    before = _metric(amap.client, sample)
    device = "d" * (MAX_BODY_BYTES + 1024)
    body = json.dumps({"records": [trip("t1", device=device)]}).encode()

    def chunks() -> Any:
        for at in range(0, len(body), 1 << 20):
            yield body[at : at + (1 << 20)]

    headers = signing.signed_headers(
        amap.creds.key_id, amap.creds.secret, "POST", "/v1/records", body, amap.timestamp,
        secrets.token_hex(16),
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="puhui.api"):
        response = amap.client.post("/v1/records", content=chunks(), headers=headers)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "body_too_large"
    assert _metric(amap.client, sample) == before + 1
    logged = [r for r in caplog.records if getattr(r, "status", None) == 413]
    assert [r.path for r in logged] == ["/v1/records"]  # type: ignore[attr-defined]
    assert amap.request("GET", "/v1/receipts/t1").status_code == 404


def test_a_server_error_is_a_problem_counted_and_logged(
    app: App, amap: Platform, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever fails unforeseen answers 500 with a problem document; it is counted in the
    metrics and logged with the request's id, never with what the request sent."""

    def failing(*args: Any) -> Any:
        raise RuntimeError("a fault of the database")

    monkeypatch.setattr(queries, "receipt", failing)
    client = TestClient(create_app(app), raise_server_exceptions=False)
    platform = Platform(client, amap.creds)
    sample = 'puhui_http_requests_total{method="GET",route="/v1/receipts/{record_id}",status="500"}'
    before = _metric(client, sample)
    with caplog.at_level(logging.INFO, logger="puhui.api"):
        response = platform.request("GET", "/v1/receipts/13800138000")
    assert response.status_code == 500
    assert response.json()["code"] == "internal_error"
    assert _metric(client, sample) == before + 1
    logged = [r for r in caplog.records if getattr(r, "status", None) == 500]
    assert [r.request_id for r in logged] == [response.headers["x-request-id"]]  # type: ignore[attr-defined]
    assert "13800138000" not in "\n".join(r.getMessage() for r in caplog.records)


def test_record_ids_are_read_back_as_sent_whatever_their_characters(amap: Platform) -> None:
    """The path is signed as sent: an id with a space or in Chinese is found; an id no record
    can have (a NUL, too long) is simply not found."""
    amap.submit([trip("a b"), event("回收单 1")])
    assert amap.request("GET", "/v1/receipts/a%20b").json()["record_id"] == "a b"
    found = amap.request("GET", "/v1/receipts/%E5%9B%9E%E6%94%B6%E5%8D%95%201")
    assert found.json()["record_id"] == "回收单 1"
    for path in ("/v1/receipts/a%00b", "/v1/receipts/" + "x" * 129):
        response = amap.request("GET", path)
        assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_health_readiness_and_the_openapi_document(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert set(schemes) == {
        signing.HEADER_KEY,
        signing.HEADER_TIMESTAMP,
        signing.HEADER_NONCE,
        signing.HEADER_SIGNATURE,
        "CitizenToken",
        "StaffToken",
    }
    assert document["paths"]["/v1/oversight/outcomes"]["get"]["security"] == [{"StaffToken": []}]
    assert "security" not in document["paths"]["/v1/methodologies"]["get"]
    assert document["paths"]["/v1/records"]["post"]["security"]
    assert document["paths"]["/v1/me"]["get"]["security"] == [{"CitizenToken": []}]
    assert "security" not in document["paths"]["/healthz"]["get"]
    missing = client.get("/v1/nowhere")
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


# Citizens ------------------------------------------------------------------------------------


def citizen_token(app: App, subject: str = "138-0013-8000") -> str:
    """A token of amap's for a citizen who granted it every scope."""
    return builders.citizen_token(app, subject)


def as_citizen(client: TestClient, token: str, path: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_a_citizen_reads_balance_history_and_how_a_credit_was_computed(
    app: App, amap: Platform, didi: Platform
) -> None:
    amap.submit([trip("t1")])
    didi.submit([event("d1", platform="didi", subject="+86 138 0013 8000")])
    token = citizen_token(app)

    assert as_citizen(amap.client, token, "/v1/me").json() == {"balance_g": 1079 + 549}
    history = as_citizen(amap.client, token, "/v1/me/history").json()["items"]
    assert [(m["platform"], m["scene"], m["amount"]) for m in history] == [
        ("didi", "recycling", 549),
        ("amap", "bus", 1079),
    ]
    # The citizen sees every credit of their account, but only the asking platform's own ids.
    assert [m["record_id"] for m in history] == [None, "t1"]
    # When each behaviour happened, beside when it was booked.
    assert [m["happened_at"] for m in history] == [
        "2026-10-02T02:00:00Z",
        "2026-10-01T00:00:00Z",
    ]
    assert {m["at"] for m in history} == {"2026-11-01T00:00:00Z"}

    bus = as_citizen(amap.client, token, f"/v1/me/credits/{history[1]['entry_id']}").json()
    assert (bus["methodology"], bus["amount"], bus["unit"]) == (
        "bj-low-carbon-travel@1.0.0",
        "5.000",
        "km",
    )
    assert bus["reduction_g"] == 1079
    assert bus["factors"]
    assert all(
        f["source"] and f["evidence"] in {"FOUND", "DERIVED", "ESTIMATE"} for f in bus["factors"]
    )
    paper = as_citizen(amap.client, token, f"/v1/me/credits/{history[0]['entry_id']}").json()
    assert (paper["platform"], paper["record_id"]) == ("didi", None)


def test_a_citizen_token_opens_only_that_citizens_account(app: App, amap: Platform) -> None:
    amap.submit([trip("t1"), trip("t2", subject="13900139000", start="2026-10-03T08:00:00+08:00",
                                   end="2026-10-03T08:20:00+08:00")])  # fmt: skip
    other = citizen_token(app, "13900139000")
    entries = as_citizen(amap.client, other, "/v1/me/history").json()["items"]
    assert len(entries) == 1
    mine = citizen_token(app)
    own = as_citizen(amap.client, mine, "/v1/me/history").json()["items"]
    response = as_citizen(amap.client, mine, f"/v1/me/credits/{entries[0]['entry_id']}")
    assert response.status_code == 404
    assert own[0]["entry_id"] != entries[0]["entry_id"]


def test_a_citizen_with_nothing_credited_has_a_zero_balance(app: App, amap: Platform) -> None:
    token = citizen_token(app, "13700137000")
    assert as_citizen(amap.client, token, "/v1/me").json() == {"balance_g": 0}
    assert as_citizen(amap.client, token, "/v1/me/history").json()["items"] == []


@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "missing_token"), ("Bearer nonsense", "invalid_token"), ("Basic abc", "missing_token")],
)
def test_citizen_reads_need_a_valid_token(
    amap: Platform, authorization: str | None, code: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = amap.client.get("/v1/me", headers=headers)
    assert (response.status_code, response.json()["code"]) == (401, code)


def test_an_altered_or_expired_token_is_refused(app: App, amap: Platform) -> None:
    token = citizen_token(app)
    payload, mac = token.split(".")
    forged = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1] + "." + mac
    assert as_citizen(amap.client, forged, "/v1/me").json()["code"] == "invalid_token"
    later = NOW + timedelta(minutes=16)
    app.clock = lambda: later
    assert as_citizen(amap.client, token, "/v1/me").json()["code"] == "expired_token"


def test_a_platform_can_no_longer_mint_a_token_for_any_number(amap: Platform) -> None:
    """A platform reads a citizen's account only with the citizen's grant."""
    response = amap.request("POST", "/v1/citizen-tokens", {"subject": "13800138000"})
    assert response.status_code in (404, 405)


# Operators and regulators --------------------------------------------------------------------


def as_staff(client: TestClient, token: str, path: str) -> Any:
    return client.get(path, headers={"Authorization": f"Bearer {token}"})


def test_operators_and_regulators_see_statistics_of_everything(
    app: App, amap: Platform, didi: Platform
) -> None:
    amap.submit([trip("t1"), trip("t2", region="440300", distance_km=5,
                  start="2026-10-02T08:00:00+08:00", end="2026-10-02T08:20:00+08:00"),
                 trip("bad", region="1")])  # fmt: skip
    didi.submit([trip("d1", platform="didi", start="2026-10-01T08:01:00+08:00",
                      end="2026-10-01T08:21:00+08:00")])  # fmt: skip
    regulator = oversight.issue_staff_token(app, "MEE auditor", oversight.Role.REGULATOR).token

    by_region = as_staff(amap.client, regulator, "/v1/oversight/reductions?by=region").json()
    assert by_region == [
        {"key": "110000", "credited_g": 1079, "records": 1, "participants": 1},
        {"key": "440300", "credited_g": 134, "records": 1, "participants": 1},
    ]
    by_day = as_staff(amap.client, regulator, "/v1/oversight/reductions?by=day").json()
    assert [d["key"] for d in by_day] == ["2026-10-01", "2026-10-02"]
    window = "/v1/oversight/reductions?by=platform&day_from=2026-10-02&day_to=2026-10-03"
    assert as_staff(amap.client, regulator, window).json() == [
        {"key": "amap", "credited_g": 134, "records": 1, "participants": 1}
    ]
    outcomes = as_staff(amap.client, regulator, "/v1/oversight/outcomes").json()
    assert {
        "platform": "amap",
        "status": "rejected",
        "reason": "unknown_region",
        "records": 1,
    } in outcomes
    pairs = as_staff(amap.client, regulator, "/v1/oversight/duplicate-pairs").json()
    assert pairs == [
        {"platform": "didi", "first_from": "amap", "reason": "duplicate_overlap", "records": 1}
    ]


def test_only_operators_read_platform_details(app: App, amap: Platform) -> None:
    amap.submit([trip("t1")])
    operator = oversight.issue_staff_token(app, "exchange ops", oversight.Role.OPERATOR).token
    regulator = oversight.issue_staff_token(app, "auditor", oversight.Role.REGULATOR).token
    platforms = as_staff(amap.client, operator, "/v1/oversight/platforms").json()
    assert [(p["code"], p["credited"], p["credited_g"]) for p in platforms] == [("amap", 1, 1079)]
    refused = as_staff(amap.client, regulator, "/v1/oversight/platforms")
    assert (refused.status_code, refused.json()["code"]) == (403, "forbidden")


def test_staff_tokens_are_checked_and_revocable(app: App, amap: Platform) -> None:
    token = oversight.issue_staff_token(app, "auditor", oversight.Role.REGULATOR).token
    path = "/v1/oversight/reductions?by=scene"
    assert as_staff(amap.client, token, path).status_code == 200
    assert as_staff(amap.client, "st_forged", path).json()["code"] == "invalid_token"
    assert amap.client.get(path).json()["code"] == "missing_token"
    # A platform's signature is no operator's token, nor a citizen's token.
    assert amap.request("GET", path).status_code == 401
    assert as_staff(amap.client, citizen_token(app), path).status_code == 401
    oversight.revoke_staff_tokens(app, "auditor")
    assert as_staff(amap.client, token, path).json()["code"] == "invalid_token"


def test_methodologies_are_public_with_formulas_and_sources(client: TestClient) -> None:
    listed = client.get("/v1/methodologies").json()
    refs = {m["ref"] for m in listed}
    assert "bj-low-carbon-travel@1.0.0" in refs
    versions = client.get("/v1/methodologies/bj-low-carbon-travel").json()
    bus = next(s for s in versions[0]["scenes"] if s["scene"] == "bus")
    assert bus["baseline_formula"]
    assert bus["unit"] == "km"
    assert client.get("/v1/methodologies/nothing").status_code == 404


def test_a_request_id_is_echoed_only_when_tame(client: TestClient) -> None:
    assert client.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == (
        "abc-123"
    )
    wild = client.get("/healthz", headers={"x-request-id": 'a"b} {\\n'}).headers["x-request-id"]
    assert len(wild) == 32


def test_the_servers_address_leads_to_the_dashboard(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"
