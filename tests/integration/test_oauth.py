"""OAuth 2.0 authorization code with PKCE over HTTP, on SQLite and PostgreSQL: a member app
sends the citizen to /oauth/authorize, the citizen signs in with a code from the SMS outbox
and grants some scopes, the app exchanges the code at /oauth/token; PKCE (S256) is required,
a code works once, and only a registered redirect URI is ever redirected to."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient

from puhui.bootstrap import App
from puhui.service import consent as consents
from tests.builders import trip
from tests.integration.conftest import Platform

REDIRECT = "https://app.example.com/puhui/callback"
PHONE = "+86 138 0013 8000"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_path(challenge: str | None, **overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "amap",
        "redirect_uri": REDIRECT,
        "scope": "balance history spend",
        "state": "xyz-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def sign_in(app: App, client: TestClient, phone: str = PHONE) -> None:
    """Sign in on puhui's page with the code read from the SMS outbox."""
    page = client.post("/dashboard/sign-in/code", data={"phone": phone, "next": "/dashboard/me"})
    assert page.status_code == 200, page.text
    challenge = re.search(r'name="challenge" value="([^"]+)"', page.text)
    assert challenge
    last = json.loads(app.settings.outbox().read_text().splitlines()[-1])
    code = re.search(r"\b([0-9]{6})\b", last["text"])
    assert code
    done = client.post(
        "/dashboard/sign-in",
        data={"challenge": challenge.group(1), "code": code.group(1), "next": "/dashboard/me"},
        follow_redirects=False,
    )
    assert done.status_code == 303, done.text


def approve(client: TestClient, path: str, scopes: list[str], decision: str = "approve") -> Any:
    page = client.get(path)
    assert page.status_code == 200, page.text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf
    form = {"csrf": csrf.group(1), "grant_scope": scopes, "days": "30", "decision": decision}
    return client.post(path, data=form, follow_redirects=False)


def code_from(response: Any) -> str:
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["xyz-1"]
    return query["code"][0]


def exchange(client: TestClient, code: str, verifier: str | None) -> Any:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": "amap"}  # fmt: skip
    if verifier is not None:
        form["code_verifier"] = verifier
    return client.post("/oauth/token", data=form)


@pytest.fixture
def registered(app: App, amap: Platform) -> TestClient:
    consents.add_redirect_uri(app, "amap", REDIRECT)
    amap.submit([trip("t1")])
    return amap.client


def test_the_citizen_grants_fewer_scopes_and_the_app_reads_only_those(
    app: App, registered: TestClient
) -> None:
    client = registered
    verifier, challenge = pkce()
    path = authorize_path(challenge)
    # Not signed in yet: the page asks for the phone number first.
    assert 'name="phone"' in client.get(path).text
    sign_in(app, client)
    code = code_from(approve(client, path, ["balance"]))

    answer = exchange(client, code, verifier)
    assert answer.status_code == 200, answer.text
    token = answer.json()
    assert (token["token_type"], token["scope"], token["expires_in"]) == ("Bearer", "balance", 900)
    assert answer.headers["cache-control"] == "no-store"
    me = {"Authorization": f"Bearer {token['access_token']}"}
    assert client.get("/v1/me", headers=me).json() == {"balance_g": 1079}
    history = client.get("/v1/me/history", headers=me)
    assert (history.status_code, history.json()["code"]) == (403, "insufficient_scope")
    spend = client.post("/v1/me/retirements", json={"grams": 1},
                        headers={**me, "Idempotency-Key": "k"})  # fmt: skip
    assert (spend.status_code, spend.json()["code"]) == (403, "insufficient_scope")

    # The citizen sees the grant and revokes it; the app's next call is refused.
    session = {"Authorization": f"Bearer {client.cookies['puhui_citizen']}"}
    [grant] = client.get("/v1/me/grants", headers=session).json()
    assert (grant["platform"], grant["scopes"], grant["state"]) == ("amap", ["balance"], "active")
    client.delete(f"/v1/me/grants/{grant['id']}", headers=session)
    refused = client.get("/v1/me", headers=me)
    assert (refused.status_code, refused.json()["code"]) == (403, "grant_revoked")


def test_a_code_works_once(app: App, registered: TestClient) -> None:
    verifier, challenge = pkce()
    sign_in(app, registered)
    code = code_from(approve(registered, authorize_path(challenge), ["balance"]))
    assert exchange(registered, code, verifier).status_code == 200
    again = exchange(registered, code, verifier)
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")


def test_pkce_is_required_and_checked(app: App, registered: TestClient) -> None:
    verifier, challenge = pkce()
    sign_in(app, registered)
    for missing in (None, ""):
        code = code_from(approve(registered, authorize_path(challenge), ["balance"]))
        answer = exchange(registered, code, missing)
        assert (answer.status_code, answer.json()["error"]) == (400, "invalid_request")
    code = code_from(approve(registered, authorize_path(challenge), ["balance"]))
    wrong = exchange(registered, code, pkce()[0])
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    # A code whose exchange failed is spent.
    assert exchange(registered, code, verifier).json()["error"] == "invalid_grant"

    # An authorization without a challenge, or with the plain method, goes back refused.
    for path in (authorize_path(None), authorize_path(verifier, code_challenge_method="plain")):
        back = registered.get(path, follow_redirects=False)
        assert back.status_code == 302
        query = parse_qs(urlsplit(back.headers["location"]).query)
        assert query["error"] == ["invalid_request"]


def test_only_a_registered_redirect_uri_is_redirected_to(app: App, registered: TestClient) -> None:
    _, challenge = pkce()
    sign_in(app, registered)
    for path in (
        authorize_path(challenge, redirect_uri="https://evil.example.com/cb"),
        authorize_path(challenge, client_id="nobody"),
    ):
        page = registered.get(path, follow_redirects=False)
        assert page.status_code == 400
        assert "location" not in page.headers
        assert 'href="https://evil' not in page.text
    unknown_scope = registered.get(authorize_path(challenge, scope="balance everything"),
                                   follow_redirects=False)  # fmt: skip
    assert parse_qs(urlsplit(unknown_scope.headers["location"]).query)["error"] == ["invalid_scope"]


def test_the_citizen_may_deny(app: App, registered: TestClient) -> None:
    _, challenge = pkce()
    sign_in(app, registered)
    denied = approve(registered, authorize_path(challenge), ["balance"], decision="deny")
    query = parse_qs(urlsplit(denied.headers["location"]).query)
    assert (query["error"], query["state"]) == (["access_denied"], ["xyz-1"])
    assert consents.grants(app, consents.queries.pseudonym_of(app, PHONE)) == []


def test_a_consent_form_from_another_site_is_refused(app: App, registered: TestClient) -> None:
    _, challenge = pkce()
    sign_in(app, registered)
    path = authorize_path(challenge)
    forged = registered.post(
        path, data={"grant_scope": ["spend"], "days": "365", "decision": "approve"},
        follow_redirects=False,
    )  # fmt: skip
    assert forged.status_code == 401
    assert consents.grants(app, consents.queries.pseudonym_of(app, PHONE)) == []


def refresh(client: TestClient, token: str, scope: str | None = None) -> Any:
    form = {"grant_type": "refresh_token", "refresh_token": token, "client_id": "amap"}
    if scope is not None:
        form["scope"] = scope
    return client.post("/oauth/token", data=form)


def test_a_refresh_token_renews_access_once_while_the_grant_is_active(
    app: App, registered: TestClient
) -> None:
    verifier, challenge = pkce()
    sign_in(app, registered)
    code = code_from(approve(registered, authorize_path(challenge), ["balance", "history"]))
    first = exchange(registered, code, verifier).json()
    assert first["refresh_token"]

    renewed = refresh(registered, first["refresh_token"])
    assert renewed.status_code == 200, renewed.text
    second = renewed.json()
    assert second["scope"] == "balance history"
    assert second["refresh_token"] != first["refresh_token"]
    me = {"Authorization": f"Bearer {second['access_token']}"}
    assert registered.get("/v1/me", headers=me).json() == {"balance_g": 1079}
    # Each refresh token is good once.
    again = refresh(registered, first["refresh_token"])
    assert (again.status_code, again.json()["error"]) == (400, "invalid_grant")
    # Fewer scopes may be asked for, never more.
    wider = refresh(registered, second["refresh_token"], "balance spend")
    assert (wider.status_code, wider.json()["error"]) == (400, "invalid_scope")
    fewer = refresh(registered, second["refresh_token"], "balance")
    assert fewer.json()["scope"] == "balance"

    # Once the citizen revokes, the refresh token gets nothing.
    session = {"Authorization": f"Bearer {registered.cookies['puhui_citizen']}"}
    [grant] = registered.get("/v1/me/grants", headers=session).json()
    registered.delete(f"/v1/me/grants/{grant['id']}", headers=session)
    refused = refresh(registered, fewer.json()["refresh_token"])
    assert (refused.status_code, refused.json()["error"]) == (400, "invalid_grant")


def test_the_sign_in_page_refuses_a_wrong_code_and_a_foreign_next(
    app: App, registered: TestClient
) -> None:
    bad_phone = registered.post("/dashboard/sign-in/code", data={"phone": "12345"})
    assert bad_phone.status_code == 422
    page = registered.post("/dashboard/sign-in/code", data={"phone": PHONE, "next": "//evil"})
    challenge = re.search(r'name="challenge" value="([^"]+)"', page.text)
    assert challenge
    assert 'name="next" value="/dashboard/me"' in page.text  # never another site
    sent = re.search(r"\b([0-9]{6})\b", app.settings.outbox().read_text())
    assert sent
    other = f"{(int(sent.group(1)) + 1) % 10**6:06d}"
    wrong = registered.post(
        "/dashboard/sign-in", data={"challenge": challenge.group(1), "code": other}
    )
    assert wrong.status_code == 401
    assert "puhui_citizen" not in registered.cookies
    assert 'role="alert"' in wrong.text
