"""Consent over HTTP, on SQLite and PostgreSQL: a member platform's token reads and spends only
what the citizen's grant allows, at every call; the citizen lists and revokes grants with
their own session; sign-in codes; the consent ledger is append-only; an older key's tokens
are refused."""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from puhui.bootstrap import App
from puhui.domain import consent
from puhui.domain.consent import Scope
from puhui.domain.errors import AuthenticationError, RateLimitedError
from puhui.service import citizens, queries
from puhui.service import consent as consents
from tests.builders import citizen_session, citizen_token, event, trip
from tests.conftest import NOW
from tests.integration.conftest import Platform

PHONE = "13800138000"


def bearer(token: str, key: str | None = None) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def problem(response: Any) -> tuple[int, str]:
    return response.status_code, response.json().get("code", "")


@pytest.fixture
def credited(app: App, amap: Platform, didi: Platform) -> TestClient:
    """A citizen credited by amap (a bus ride, 1 079 g) and by didi (paper, 549 g)."""
    amap.submit([trip("t1")])
    didi.submit([event("d1", platform="didi")])
    return amap.client


def test_a_balance_grant_reads_the_balance_and_nothing_else(app: App, credited: TestClient) -> None:
    token = citizen_token(app, PHONE, "amap", ["balance"])
    assert credited.get("/v1/me", headers=bearer(token)).json() == {"balance_g": 1079 + 549}
    assert credited.get("/v1/me/holdings", headers=bearer(token)).status_code == 200
    for path in ("/v1/me/history", "/v1/me/operations", "/v1/me/credits/1"):
        refused = credited.get(path, headers=bearer(token))
        assert problem(refused) == (403, "insufficient_scope"), path
        assert "history" in refused.json()["detail"]
    spent = credited.post("/v1/me/retirements", json={"grams": 10}, headers=bearer(token, "k1"))
    assert problem(spent) == (403, "insufficient_scope")
    assert credited.get("/v1/me", headers=bearer(token)).json() == {"balance_g": 1628}


def test_history_shows_this_platforms_records_unless_history_all(
    app: App, credited: TestClient
) -> None:
    own = citizen_token(app, PHONE, "amap", ["history"])
    lines = credited.get("/v1/me/history", headers=bearer(own)).json()["items"]
    assert [(m["platform"], m["record_id"]) for m in lines] == [("amap", "t1")]
    assert problem(credited.get("/v1/me", headers=bearer(own))) == (403, "insufficient_scope")

    everything = citizen_token(app, PHONE, "amap", ["history:all"])
    lines = credited.get("/v1/me/history", headers=bearer(everything)).json()["items"]
    assert [(m["platform"], m["record_id"]) for m in lines] == [("didi", None), ("amap", "t1")]
    didi_credit = lines[0]["entry_id"]
    assert credited.get(f"/v1/me/credits/{didi_credit}", headers=bearer(everything)).is_success
    # With `history` only, didi's credit is not in this account as amap sees it.
    hidden = credited.get(f"/v1/me/credits/{didi_credit}", headers=bearer(own))
    assert problem(hidden) == (404, "not_found")


def test_spend_allows_operations_and_history_shows_this_platforms_own(
    app: App, credited: TestClient
) -> None:
    amap_token = citizen_token(app, PHONE, "amap", ["spend", "history"])
    didi_token = citizen_token(app, PHONE, "didi", ["spend", "history"])
    for token, key in ((amap_token, "a-1"), (didi_token, "d-1")):
        done = credited.post("/v1/me/retirements", json={"grams": 10}, headers=bearer(token, key))
        assert done.status_code == 200, done.text
    seen = credited.get("/v1/me/operations", headers=bearer(amap_token)).json()
    assert [o["actor"] for o in seen] == ["platform:amap"]


def test_a_revocation_takes_effect_on_the_next_call(app: App, credited: TestClient) -> None:
    token = citizen_token(app, PHONE, "amap", ["balance"])
    session = citizen_session(app, "+86 138 0013 8000")
    assert credited.get("/v1/me", headers=bearer(token)).status_code == 200

    grants = credited.get("/v1/me/grants", headers=bearer(session)).json()
    assert [(g["platform"], g["scopes"], g["state"]) for g in grants] == [
        ("amap", ["balance"], "active")
    ]
    assert grants[0]["expires_at"] == (NOW + timedelta(days=90)).isoformat().replace("+00:00", "Z")
    revoked = credited.delete(f"/v1/me/grants/{grants[0]['id']}", headers=bearer(session))
    assert revoked.json()["state"] == "revoked"

    refused = credited.get("/v1/me", headers=bearer(token))
    assert problem(refused) == (403, "grant_revoked")
    # Revoking again changes nothing; another citizen's grant is not found.
    again = credited.delete(f"/v1/me/grants/{grants[0]['id']}", headers=bearer(session))
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]
    stranger = citizen_session(app, "13900139000")
    other = credited.delete(f"/v1/me/grants/{grants[0]['id']}", headers=bearer(stranger))
    assert problem(other) == (404, "not_found")


def test_only_the_citizens_own_session_manages_grants(app: App, credited: TestClient) -> None:
    token = citizen_token(app, PHONE, "amap")
    for method in ("GET", "DELETE"):
        path = "/v1/me/grants" if method == "GET" else "/v1/me/grants/g_x"
        refused = credited.request(method, path, headers=bearer(token))
        assert problem(refused) == (403, "forbidden"), method
    assert problem(credited.get("/v1/me/grants")) == (401, "missing_token")


def test_an_expired_grant_and_a_grant_never_made_are_refused(
    app: App, credited: TestClient
) -> None:
    made = consents.grant(app, queries.pseudonym_of(app, PHONE), "amap", frozenset(Scope), 30)
    # A token carries the grant's id: the grant as stored decides, not what the token says.
    lasting = dataclasses.replace(made, expires_at=made.expires_at + timedelta(days=1))
    app.clock = lambda: made.expires_at - timedelta(minutes=1)
    token = citizens.issue_access_token(app, lasting).token
    app.clock = lambda: made.expires_at + timedelta(seconds=1)
    assert problem(credited.get("/v1/me", headers=bearer(token))) == (403, "grant_expired")

    never = dataclasses.replace(lasting, id="g_never")
    forged = citizens.issue_access_token(app, never).token
    assert problem(credited.get("/v1/me", headers=bearer(forged))) == (403, "consent_required")


def test_an_access_token_lives_15_minutes_at_most_and_never_past_its_grant(
    app: App, amap: Platform
) -> None:
    grant = consents.grant(app, queries.pseudonym_of(app, PHONE), "amap", frozenset(Scope), 30)
    assert citizens.issue_access_token(app, grant).expires_at == NOW + timedelta(minutes=15)
    app.clock = lambda: grant.expires_at - timedelta(minutes=5)
    assert citizens.issue_access_token(app, grant).expires_at == grant.expires_at


def test_a_token_of_an_older_key_version_is_refused(app: App, credited: TestClient) -> None:
    token = citizen_token(app, PHONE, "amap", ["balance"])
    app.keyring.rotate("citizen-tokens")
    refused = credited.get("/v1/me", headers=bearer(token))
    assert problem(refused) == (401, "invalid_token")
    assert "no longer in use" in refused.json()["detail"]
    fresh = citizen_token(app, PHONE, "amap", ["balance"])
    assert credited.get("/v1/me", headers=bearer(fresh)).status_code == 200


def test_the_consent_ledger_is_append_only(app: App, amap: Platform) -> None:
    consents.grant(app, queries.pseudonym_of(app, PHONE), "amap", frozenset({Scope.BALANCE}), 30)
    for statement in ("update consent_events set scopes = 'spend'", "delete from consent_events"):
        with pytest.raises(DBAPIError), app.engine.begin() as conn:
            conn.execute(text(statement))
    with app.engine.connect() as conn:
        names = {
            n
            for (n,) in conn.execute(
                text(
                    "select name from sqlite_master where type = 'trigger'"
                    if app.engine.dialect.name == "sqlite"
                    else "select tgname from pg_trigger where not tgisinternal"
                )
            )
        }
    assert {"consent_events_append_only_update", "consent_events_append_only_delete"} <= names


# Signing in with a code -----------------------------------------------------------------------


def outbox(app: App) -> list[dict[str, str]]:
    path = app.settings.outbox()
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def code_of(message: dict[str, str]) -> str:
    return next(w for w in message["text"].replace("，", " ").split() if w.isdigit())


def test_a_code_is_sent_masked_and_signs_the_citizen_in_once(app: App) -> None:
    sent = consents.send_code(app, "+86 138 0013 8000")
    assert sent.sent_to == "+86 138 **** 8000"
    [message] = outbox(app)
    assert message["to"] == "+86 138 **** 8000"
    assert PHONE not in app.settings.outbox().read_text()
    session = consents.sign_in(app, sent.challenge, code_of(message))
    who = citizens.verify_token(app, session.token)
    assert (who.own_session, who.pseudonym) == (True, queries.pseudonym_of(app, PHONE))
    with pytest.raises(AuthenticationError, match="used already"):
        consents.sign_in(app, sent.challenge, code_of(message))


def test_a_code_allows_five_tries_and_five_minutes(app: App) -> None:
    sent = consents.send_code(app, PHONE)
    right = code_of(outbox(app)[-1])
    wrong = f"{(int(right) + 1) % 10**6:06d}"
    for _ in range(consent.CODE_ATTEMPTS - 1):
        with pytest.raises(AuthenticationError) as e:
            consents.sign_in(app, sent.challenge, wrong)
        assert e.value.code == "bad_code"
    consents.sign_in(app, sent.challenge, right)  # the fifth try

    other = consents.send_code(app, PHONE)
    for _ in range(consent.CODE_ATTEMPTS):
        with pytest.raises(AuthenticationError):
            consents.sign_in(app, other.challenge, wrong)
    with pytest.raises(AuthenticationError) as e:
        consents.sign_in(app, other.challenge, code_of(outbox(app)[-1]))
    assert e.value.code == "too_many_attempts"

    late = consents.send_code(app, PHONE)
    app.clock = lambda: NOW + timedelta(minutes=5)
    with pytest.raises(AuthenticationError) as e:
        consents.sign_in(app, late.challenge, code_of(outbox(app)[-1]))
    assert e.value.code == "code_expired"


def test_a_number_gets_a_few_codes_an_hour(app: App) -> None:
    for _ in range(consent.CODE_SENDS_PER_HOUR):
        consents.send_code(app, PHONE)
    with pytest.raises(RateLimitedError):
        consents.send_code(app, PHONE)
    consents.send_code(app, "13900139000")  # another number is not held back
    app.clock = lambda: NOW + timedelta(hours=1, seconds=1)
    consents.send_code(app, PHONE)


def test_a_code_of_an_older_key_version_is_refused(app: App) -> None:
    sent = consents.send_code(app, PHONE)
    app.keyring.rotate("consent-codes")
    with pytest.raises(AuthenticationError) as e:
        consents.sign_in(app, sent.challenge, code_of(outbox(app)[-1]))
    assert e.value.code == "bad_code"


def test_the_operator_revokes_a_grant_on_a_verified_request(app: App, credited: TestClient) -> None:
    token = citizen_token(app, PHONE, "amap", ["balance"])
    [grant] = consents.grants(app, queries.pseudonym_of(app, PHONE))
    with pytest.raises(Exception, match="no grant"):
        consents.revoke_for_operator(app, "13900139000", grant.id, "ops", "ticket 12")
    done = consents.revoke_for_operator(app, "138 0013 8000", grant.id, "ops", "ticket 12")
    assert (done.revoked_by, done.state(NOW)) == ("operator:ops", consent.State.REVOKED)
    assert problem(credited.get("/v1/me", headers=bearer(token))) == (403, "grant_revoked")
