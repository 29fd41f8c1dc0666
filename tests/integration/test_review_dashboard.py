"""The review queue on the dashboard, on SQLite and PostgreSQL: an operator signed in lists the
held records with each signal's account, releases several at once and rejects one from its own
page (each form carrying the session's form token, each decision its reason); the operator's
page then marks the platform whose reviewed records were rejected too often; a regulator is
refused the queue; a citizen sees their held records as pending, and the decided ones with
their final status."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puhui.bootstrap import App
from puhui.entrypoints.dashboard import COOKIES
from puhui.service import admin, credentials, ledger, oversight
from tests.builders import citizen_session, trip
from tests.integration.conftest import Platform

LATER = datetime(2026, 12, 1, tzinfo=UTC)
PHONES = [f"1380013{n:04d}" for n in range(7)]


def ride(n: int) -> dict[str, Any]:
    """Citizen n's 12 km metro ride in Shenzhen on the (n + 2)th of November 2026."""
    on = f"2026-11-{n + 2:02d}"
    times = {"start": f"{on}T08:00:00+08:00", "end": f"{on}T08:30:00+08:00"}
    return trip(f"r{n}", subject=PHONES[n], scene="metro", region="440300", distance_km=12, **times)


@pytest.fixture
def seqs(app: App, client: TestClient) -> list[int]:
    """Seven held rides of amap, by citizen."""
    app.clock = lambda: LATER
    admin.add_platform(app, "amap")
    amap = Platform(client, credentials.issue(app, "amap"), int(LATER.timestamp()))
    receipts = amap.submit([ride(n) for n in range(7)]).json()["receipts"]
    assert {r["status"] for r in receipts} == {"held"}
    items = amap.request("GET", "/v1/receipts").json()["items"]
    return [r["seq"] for r in items]


def sign_in(client: TestClient, app: App, role: oversight.Role) -> None:
    token = oversight.issue_staff_token(app, f"{role.value}-wang", role).token
    client.cookies.clear()
    signed = client.post(
        "/dashboard/login", data={"kind": "staff", "token": token}, follow_redirects=False
    )
    assert signed.status_code == 303
    client.cookies.set(COOKIES["staff"], token)


def form_token(page: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, page
    return found.group(1)


def decide(client: TestClient, fields: dict[str, Any]) -> Any:
    return client.post("/dashboard/review/decisions", data=fields, follow_redirects=False)


def test_an_operator_works_the_queue_on_the_dashboard(
    app: App, client: TestClient, seqs: list[int]
) -> None:
    sign_in(client, app, oversight.Role.OPERATOR)
    queue = client.get("/dashboard/review?lang=en")
    assert queue.status_code == 200
    page = queue.text
    assert page.count('type="checkbox" name="seq"') == 7
    assert "awaiting corroboration" in page
    assert "policy sz-metro: metro here is credited on the word of szmetro" in page
    assert all(phone not in page for phone in PHONES)
    csrf = form_token(page)

    # Nothing is decided without the form token, a selection, or a reason.
    assert "token" in decide(client, {"csrf": "0" * 64, "seq": seqs[:4], "decision": "release",
                                      "reason": "ok"}).text  # fmt: skip
    refused = decide(client, {"csrf": csrf, "seq": seqs[:4], "decision": "release", "reason": " "})
    assert refused.headers["location"] == "/dashboard/review?error=need_reason"
    assert "Give a reason" in client.get(refused.headers["location"] + "&lang=en").text
    unselected = decide(client, {"csrf": csrf, "decision": "release", "reason": "ok"})
    assert unselected.headers["location"] == "/dashboard/review?error=need_selection"
    assert client.get("/dashboard/review").text.count('name="seq"') == 7

    # Four released at once.
    done = decide(
        client,
        {"csrf": csrf, "seq": seqs[:4], "decision": "release", "reason": "card taps match",
         "back": "/dashboard/review"},
    )  # fmt: skip
    assert done.status_code == 303
    assert done.headers["location"] == "/dashboard/review?done=4&skipped=0"
    assert "4 records decided" in client.get(done.headers["location"] + "&lang=en").text
    assert ledger.verify(app) == []

    # One rejected from its own page, which shows the signals and every source's records.
    detail = client.get(f"/dashboard/review/{seqs[4]}?lang=en")
    assert detail.status_code == 200
    assert 'id="signals"' in detail.text
    assert 'id="sources"' in detail.text
    assert 'data-testid="reject"' in detail.text
    rejected = decide(
        client,
        {"csrf": form_token(detail.text), "seq": str(seqs[4]), "decision": "reject",
         "reason": "no tap at szmetro", "back": f"/dashboard/review/{seqs[4]}"},
    )  # fmt: skip
    assert rejected.headers["location"] == f"/dashboard/review/{seqs[4]}?done=1&skipped=0"
    after = client.get(rejected.headers["location"] + "&lang=en").text
    assert "no tap at szmetro" in after
    assert "rejected on review" in after
    assert 'data-testid="reject"' not in after  # decided: no more buttons
    assert ledger.verify(app) == []
    # A back address elsewhere is not followed.
    elsewhere = decide(
        client,
        {"csrf": csrf, "seq": str(seqs[5]), "decision": "release", "reason": "ok",
         "back": "https://example.com/"},
    )  # fmt: skip
    assert elsewhere.headers["location"].startswith("/dashboard/review?done=1")

    decided = client.get("/dashboard/review?state=decided&lang=en").text
    assert decided.count("<tr data-seq=") == 6
    assert 'type="checkbox"' not in decided

    # 1 of 6 reviewed rejected: under 20 %, not flagged; reject another and it is (2 of 7).
    operator = client.get("/dashboard/operator?lang=en").text
    assert 'href="/dashboard/review"' in operator
    assert 'id="review_rates"' in operator
    assert 'class="flagged"' not in operator
    decide(client, {"csrf": csrf, "seq": str(seqs[6]), "decision": "reject", "reason": "no"})
    operator = client.get("/dashboard/operator?lang=en").text
    flagged = re.search(r'<tr data-platform="amap" class="flagged">(.*?)</tr>', operator, re.S)
    assert flagged, operator
    assert '<span class="badge" data-testid="flagged">flagged</span>' in flagged.group(1)
    csv = client.get("/dashboard/operator/tables/review_rates.csv?lang=en").text
    assert csv.splitlines()[1].startswith("amap,7,7,0,0,5,2,0,28.6 %,flagged")
    assert ledger.verify(app) == []


def test_a_regulator_may_not_open_the_queue(app: App, client: TestClient, seqs: list[int]) -> None:
    sign_in(client, app, oversight.Role.REGULATOR)
    assert client.get("/dashboard/review").status_code == 403
    assert client.get(f"/dashboard/review/{seqs[0]}").status_code == 403
    refused = decide(client, {"seq": str(seqs[0]), "decision": "release", "reason": "ok"})
    assert refused.status_code == 403
    client.cookies.clear()
    assert client.get("/dashboard/review").status_code == 200  # the sign-in form
    assert 'id="token"' in client.get("/dashboard/review").text


def test_a_citizen_sees_held_records_pending_then_decided(
    app: App, client: TestClient, seqs: list[int]
) -> None:
    client.cookies.set(COOKIES["citizen"], citizen_session(app, PHONES[0]))
    mine = client.get("/dashboard/me?lang=en").text
    row = re.search(r'<tr data-state="pending">(.*?)</tr>', mine, re.S)
    assert row, mine
    assert "560 g" in row.group(1)
    assert "pending" in row.group(1)

    sign_in(client, app, oversight.Role.OPERATOR)
    csrf = form_token(client.get("/dashboard/review").text)
    decide(client, {"csrf": csrf, "seq": str(seqs[0]), "decision": "reject", "reason": "no"})
    client.cookies.clear()
    client.cookies.set(COOKIES["citizen"], citizen_session(app, PHONES[0]))
    mine = client.get("/dashboard/me?lang=en").text
    row = re.search(r'<tr data-state="rejected">(.*?)</tr>', mine, re.S)
    assert row, mine
    assert "rejected on review" in row.group(1)
    assert "0 g" in row.group(1)
