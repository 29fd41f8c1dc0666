"""The citizen decides who sees and spends the account, end to end in a real browser (Debian's
Chromium driven by Playwright) against `puhui serve`, on SQLite and PostgreSQL: a member app
starts an OAuth authorization with PKCE, the citizen signs in with the code the SMS outbox
received and grants `balance` only, the app exchanges the code and reads the balance but is
refused history and spending; the citizen revokes on the dashboard and the app's next call is
refused; the operator revokes another grant from the command line."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from playwright.sync_api import Browser, Page, Route

from tests.builders import trip, write_jsonl
from tests.e2e.conftest import Server
from tests.e2e.test_dashboard import browser, last_code, shot  # noqa: F401 (the fixture)

# The member app's address: the browser's requests to it are answered by the test itself.
REDIRECT = "http://127.0.0.1:9/puhui/callback"


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize(
    page: Page, server: Server, cli: Any, challenge: str, scopes: list[str], shown: str = "amap"
) -> str:
    """The citizen goes through the authorization in the browser, sees the app as `shown` and
    grants `scopes` (of the three asked for) for 30 days; the code the app received."""
    arrived: list[str] = []

    def app_callback(route: Route) -> None:
        arrived.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body="<p>back in the app</p>")

    page.route(REDIRECT + "*", app_callback)
    query = urlencode({
        "response_type": "code", "client_id": "amap", "redirect_uri": REDIRECT,
        "scope": "balance history spend", "state": "s-42", "code_challenge": challenge,
        "code_challenge_method": "S256",
    })  # fmt: skip
    page.goto(f"{server.base}/oauth/authorize?{query}")
    if page.locator("#phone").count():
        page.locator("#phone").fill("189 4862 6928")
        page.locator("form button").click()
        page.wait_for_load_state()
        assert "+86 189 **** 6928" in page.get_by_test_id("sent-to").inner_text()
        page.locator("#code").fill(last_code(cli))
        page.locator("form button").click()
        page.wait_for_load_state()
    assert page.get_by_role("heading", level=2).first.inner_text() in ("授权", "Authorize")
    assert shown in page.locator("main").inner_text()
    for box in page.locator("input[name=grant_scope]").all():
        if box.get_attribute("value") not in scopes:
            box.uncheck()
    page.locator("#days").select_option("30")
    shot(page, "consent")
    page.get_by_role("button", name=re.compile("同意授权|Allow")).click()
    page.wait_for_url(re.compile(re.escape(REDIRECT)))
    assert arrived
    query_back = parse_qs(urlsplit(arrived[-1]).query)
    assert query_back["state"] == ["s-42"]
    return query_back["code"][0]


def token_for(server: Server, code: str, verifier: str) -> dict[str, Any]:
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": "amap", "code_verifier": verifier}  # fmt: skip
    status, _, body = server.call(
        "POST", "/oauth/token", urlencode(form).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert status == 200, body
    answer: dict[str, Any] = json.loads(body)
    return answer


def as_app(server: Server, token: str, method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json",
               "Idempotency-Key": secrets.token_hex(8)}  # fmt: skip
    data = b"" if body is None else json.dumps(body).encode()
    status, _, raw = server.call(method, path, data, headers)
    return status, json.loads(raw)


def test_the_citizen_grants_balance_only_then_revokes(
    browser: Browser,  # noqa: F811
    cli: Any,
    server: Server,
    tmp_path: Path,
) -> None:
    cli("platform", "add", "amap", "--name", "高德地图", "--redirect-uri", REDIRECT)
    rides = [trip("t1", subject="18948626928")]
    cli("ingest", "--platform", "amap", str(write_jsonl(tmp_path / "a.jsonl", rides)))
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.goto(f"{server.base}/dashboard?lang=en")

    verifier, challenge = pkce()
    code = authorize(page, server, cli, challenge, ["balance"], shown="高德地图 (amap)")
    token = token_for(server, code, verifier)
    assert (token["scope"], token["token_type"]) == ("balance", "Bearer")
    access = token["access_token"]
    assert as_app(server, access, "GET", "/v1/me") == (200, {"balance_g": 1079})
    status, refused = as_app(server, access, "GET", "/v1/me/history")
    assert (status, refused["code"]) == (403, "insufficient_scope")
    status, refused = as_app(server, access, "POST", "/v1/me/retirements", {"grams": 1})
    assert (status, refused["code"]) == (403, "insufficient_scope")
    # The code was for one exchange only.
    status, _, _ = server.call(
        "POST", "/oauth/token",
        urlencode({"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                   "client_id": "amap", "code_verifier": verifier}).encode(),
        {"Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip
    assert status == 400

    # The citizen, still signed in, revokes on the dashboard.
    page.goto(f"{server.base}/dashboard/me?lang=en")
    row = page.locator("#grants tbody tr", has_text="amap")
    assert row.get_by_test_id("grant-state").inner_text() == "active"
    assert "balance" in row.inner_text()
    shot(page, "citizen-grants")
    row.get_by_role("button", name="Revoke").click()
    page.wait_for_load_state()
    assert row.get_by_test_id("grant-state").inner_text() == "revoked"
    status, refused = as_app(server, access, "GET", "/v1/me")
    assert (status, refused["code"]) == (403, "grant_revoked")

    # A second grant; the operator revokes it on the citizen's verified request.
    verifier, challenge = pkce()
    second = token_for(server, authorize(page, server, cli, challenge, ["balance"]), verifier)
    assert as_app(server, second["access_token"], "GET", "/v1/me")[0] == 200
    listed = cli("account", "grants", "189 4862 6928")
    assert second["grant_id"] in listed
    cli("account", "revoke-grant", "189 4862 6928", second["grant_id"], "--reason", "ticket 7")
    status, refused = as_app(server, second["access_token"], "GET", "/v1/me")
    assert (status, refused["code"]) == (403, "grant_revoked")
    assert "18948626928" not in (tmp_path / "server.log").read_text()
    context.close()


def test_the_citizen_erases_the_account_on_the_dashboard(
    browser: Browser,  # noqa: F811
    cli: Any,
    server: Server,
    tmp_path: Path,
    database_url: str,
) -> None:
    """Signed in with a code, the citizen erases the account: the app's token is refused, the
    number finds nothing, the ledger verifies, and neither the database's files (SQLite) nor
    the server's log hold the ride's evidence reference or device."""
    cli("platform", "add", "amap", "--redirect-uri", REDIRECT)
    ride = trip("t1", subject="18948626928", ref="TAP-E2E-90417", device="handset-e2e-3301")
    cli("ingest", "--platform", "amap", str(write_jsonl(tmp_path / "a.jsonl", [ride])))
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    verifier, challenge = pkce()
    access = token_for(server, authorize(page, server, cli, challenge, ["balance"]), verifier)
    assert as_app(server, access["access_token"], "GET", "/v1/me")[0] == 200

    page.goto(f"{server.base}/dashboard/me?lang=en")
    page.locator("#erase input[name=confirm]").fill("erase my account")
    shot(page, "citizen-erase")
    page.get_by_test_id("erase").click()
    page.wait_for_load_state()
    assert "behaviour details were deleted: 1" in page.get_by_test_id("notice").inner_text()

    status, refused = as_app(server, access["access_token"], "GET", "/v1/me")
    assert status == 403
    assert refused["code"] in {"grant_revoked", "consent_required"}
    page.goto(f"{server.base}/dashboard/me?lang=en")
    assert page.locator("#phone").count() == 1  # signed out
    assert "ledger sound" in cli("ledger", "verify")
    traces = [(tmp_path / "server.log").read_bytes()]
    if database_url.startswith("sqlite"):
        traces += [p.read_bytes() for p in tmp_path.glob("*.db*")]
    for detail in (b"tap-e2e-90417", b"TAP-E2E-90417", b"handset-e2e-3301", b"18948626928"):
        assert not any(detail in trace for trace in traces), detail
    context.close()
