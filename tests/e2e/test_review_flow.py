"""The review of held records (spec v1.1) end to end, in a real browser (Debian's Chromium driven
by Playwright) against `puhui serve`, on SQLite and PostgreSQL.

One citizen's records of November 2026, under the evidence policies, sent over the platforms'
signed API: amap's bus ride in Beijing and didi's located bike trip there are credited; amap's
located walk in Shenzhen, starting 20 minutes after the bike trip ended some 1 900 km away, is
held `velocity`; amap's metro ride in Shenzhen, which szmetro (the authority) never reports, is
held `awaiting_corroboration`. The citizen's page shows both pending. An operator opens the
queue and reads why each is held, opens the walk and finds the signal and both platforms'
records of that morning, releases it with a reason, goes back and rejects the ride with a
reason. The citizen's balance rises by the walk's grams, the release is in the history with its
platform, scene and date, and the ride reads rejected; amap's receipts say `credited` /
`released` and `rejected` / `rejected_on_review`, each with when it was decided; the ledger
verifies."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page

from tests.builders import trip
from tests.e2e.conftest import Server, credentials_of
from tests.e2e.test_dashboard import (  # noqa: F401 (the fixture)
    browser,
    citizen_sign_in,
    shot,
    sign_in,
    staff_token,
)

PHONE = "13800138000"
# Tiananmen, Beijing, and Futian, Shenzhen: some 1 940 km apart.
BEIJING = {"origin_lat": 39.9087, "origin_lon": 116.3975, "dest_lat": 39.9150,
           "dest_lon": 116.4040}  # fmt: skip
SHENZHEN = {"origin_lat": 22.5431, "origin_lon": 114.0579, "dest_lat": 22.5330,
            "dest_lon": 114.0550}  # fmt: skip


def submitted(server: Server, creds: dict[str, str], *records: dict[str, Any]) -> list[Any]:
    """Send records over the platform's signed API; their receipts."""
    status, body = server.signed(creds, "POST", "/v1/records", {"records": list(records)})
    assert status == 200, body
    receipts: list[Any] = body["receipts"]
    return receipts


def receipt(server: Server, creds: dict[str, str], record_id: str) -> dict[str, Any]:
    status, body = server.signed(creds, "GET", f"/v1/receipts/{record_id}")
    assert status == 200, body
    found: dict[str, Any] = body
    return found


def seq_of(server: Server, creds: dict[str, str], record_id: str) -> int:
    """The receive number of a platform's record, from its receipts."""
    status, page = server.signed(creds, "GET", "/v1/receipts?limit=100")
    assert status == 200, page
    return next(int(r["seq"]) for r in page["items"] if r["record_id"] == record_id)


def balance(page: Page) -> int:
    return int(re.sub(r"[^0-9]", "", page.get_by_test_id("balance").inner_text()))


def test_an_operator_releases_one_held_record_and_rejects_another(
    browser: Browser,  # noqa: F811
    cli: Any,
    server: Server,
    database_url: str,
    tmp_path: Path,
) -> None:
    db = "sqlite" if database_url.startswith("sqlite") else "postgres"
    amap = credentials_of(cli("platform", "add", "amap"))
    didi = credentials_of(cli("platform", "add", "didi"))
    cli("platform", "add", "szmetro")  # the authority of Shenzhen's metro: it reports nothing

    # 10 November: a bus ride (amap) and a located bike trip (didi) in Beijing, credited.
    on = "2026-11-10T"
    bus = trip("bus-1", subject=PHONE, start=f"{on}07:00:00+08:00", end=f"{on}07:20:00+08:00")
    bike = trip("bike-1", platform="didi", subject=PHONE, scene="bike",
                start=f"{on}08:00:00+08:00", end=f"{on}08:20:00+08:00", distance_km=4,
                **BEIJING)  # fmt: skip
    [credited_bus] = submitted(server, amap, bus)
    [credited_bike] = submitted(server, didi, bike)
    assert (credited_bus["status"], credited_bike["status"]) == ("credited", "credited")
    credited_g = credited_bus["reduction_g"] + credited_bike["reduction_g"]
    assert credited_g > 0

    # ... then a walk in Shenzhen from 08:40 (amap): held, the citizen cannot be in both places.
    walk = trip("walk-1", subject=PHONE, scene="walk", region="440300",
                start=f"{on}08:40:00+08:00", end=f"{on}09:00:00+08:00", distance_km=2,
                **SHENZHEN)  # fmt: skip
    # 20 November: a metro ride in Shenzhen (amap) that szmetro never reports.
    ride = trip("metro-1", subject=PHONE, scene="metro", region="440300",
                start="2026-11-20T08:00:00+08:00", end="2026-11-20T08:30:00+08:00",
                distance_km=12)  # fmt: skip
    held_walk, held_ride = submitted(server, amap, walk, ride)
    assert (held_walk["status"], held_walk["reason"]) == ("held", "velocity")
    assert (held_ride["status"], held_ride["reason"]) == ("held", "awaiting_corroboration")
    walk_g, ride_g = held_walk["reduction_g"], held_ride["reduction_g"]
    assert walk_g > 0
    assert ride_g > 0
    walk_seq, ride_seq = seq_of(server, amap, "walk-1"), seq_of(server, amap, "metro-1")

    # The citizen sees the credits in the balance and the two held records pending.
    citizen = browser.new_context(locale="en-US")
    me = citizen.new_page()
    me.goto(f"{server.base}/dashboard?lang=en")
    citizen_sign_in(me, server.base, cli, PHONE)
    assert me.url.endswith("/dashboard/me")
    assert balance(me) == credited_g
    pending = me.locator("#pending tbody tr")
    assert pending.count() == 2
    assert me.locator('#pending tr[data-state="pending"]').count() == 2
    walk_row = me.locator("#pending tbody tr", has_text="2026-11-10 08:40")
    ride_row = me.locator("#pending tbody tr", has_text="2026-11-20 08:00")
    assert walk_row.locator("td.num").inner_text() == f"{walk_g:,} g"
    assert ride_row.locator("td.num").inner_text() == f"{ride_g:,} g"
    shot(me, f"review-citizen-pending-{db}")

    # The operator opens the queue: both records, each with why it is held.
    ops = browser.new_context(locale="en-US")
    page = ops.new_page()
    page.goto(f"{server.base}/dashboard?lang=en")
    sign_in(page, server.base, "staff", staff_token(cli, "ops-li", "operator"))
    assert page.url.endswith("/dashboard/operator")
    page.goto(f"{server.base}/dashboard/review")
    queue = page.get_by_test_id("queue")
    assert queue.locator("tbody tr").count() == 2
    walk_line = queue.locator(f'tbody tr[data-seq="{walk_seq}"]')
    ride_line = queue.locator(f'tbody tr[data-seq="{ride_seq}"]')
    velocity = walk_line.locator('li[data-reason="velocity"]').inner_text()
    assert re.search(r"would have covered 19[0-9]{2} km in 20 min", velocity), velocity
    assert "over 800 km/h" in velocity
    waiting = ride_line.locator('li[data-reason="awaiting_corroboration"]').inner_text()
    assert "policy sz-metro" in waiting
    assert "szmetro" in waiting
    assert walk_line.locator("td.num").nth(1).inner_text() == f"{walk_g:,}"
    shot(page, f"review-queue-{db}")

    # The walk: the signal, and what amap and didi reported of that morning.
    walk_line.get_by_role("link", name=str(walk_seq)).click()
    page.wait_for_load_state()
    assert page.url.endswith(f"/dashboard/review/{walk_seq}")
    assert "walk-1" in page.locator("#held-title").inner_text()
    assert page.get_by_test_id("grams").inner_text() == f"{walk_g:,}"
    signal = page.locator('#signals tr[data-reason="velocity"]')
    assert "velocity" in signal.locator("code").inner_text()
    assert re.search(r"19[0-9]{2} km in 20 min", signal.inner_text())
    related = page.get_by_test_id("related").locator("tbody tr")
    assert [related.nth(i).locator("td").nth(0).inner_text() for i in range(related.count())] == [
        "amap",
        "didi",
    ]
    assert [related.nth(i).locator("td").nth(1).inner_text() for i in range(related.count())] == [
        "bus-1",
        "bike-1",
    ]
    assert page.get_by_test_id("related").get_by_text("2026-11-10 08:00").count() == 1
    shot(page, f"review-item-{db}")

    # Released with a reason.
    page.locator("#reason").fill("the didi trip was booked for a relative; the walk is genuine")
    page.locator("#decide").get_by_test_id("release").click()
    page.wait_for_load_state()
    assert page.url.split("?")[0].endswith(f"/dashboard/review/{walk_seq}")
    assert page.get_by_test_id("status").inner_text() == "credited: released on review"
    assert page.get_by_test_id("note").inner_text().startswith("the didi trip was booked")
    assert page.locator("#decide").count() == 0

    # Back in the queue, the ride is the one left: rejected with a reason.
    page.get_by_role("link", name="Back to the review queue").click()
    page.wait_for_load_state()
    queue = page.get_by_test_id("queue")
    assert queue.locator("tbody tr").count() == 1
    ride_line = queue.locator(f'tbody tr[data-seq="{ride_seq}"]')
    ride_line.locator(f'input[name="seq"][value="{ride_seq}"]').check()
    page.locator("#bulk-reason").fill("szmetro has no such ride")
    page.locator("#bulk").get_by_test_id("reject").click()
    page.wait_for_load_state()
    assert "1 records decided" in page.get_by_test_id("notice").inner_text()
    assert page.get_by_test_id("queue").count() == 0  # nothing left open
    page.goto(f"{server.base}/dashboard/review?state=decided")
    decided = page.get_by_test_id("queue")
    assert "released on review" in decided.locator(f'tr[data-seq="{walk_seq}"]').inner_text()
    assert "rejected on review" in decided.locator(f'tr[data-seq="{ride_seq}"]').inner_text()
    shot(page, f"review-decided-{db}")
    ops.close()

    # The citizen: the walk's grams credited, the release in the history, the ride rejected.
    me.goto(f"{server.base}/dashboard/me")
    assert balance(me) == credited_g + walk_g
    assert me.locator('#pending tr[data-state="pending"]').count() == 0
    walk_row = me.locator("#pending tbody tr", has_text="2026-11-10 08:40")
    assert walk_row.get_attribute("data-state") == "credited"
    assert "released on review" in walk_row.get_by_test_id("pending-state").inner_text()
    ride_row = me.locator("#pending tbody tr", has_text="2026-11-20 08:00")
    assert ride_row.get_attribute("data-state") == "rejected"
    assert "rejected on review" in ride_row.get_by_test_id("pending-state").inner_text()
    assert ride_row.locator("td.num").inner_text() == "0 g"
    release = me.locator("#history tbody tr", has_text="Credit after a check")
    assert release.count() == 1
    cells = release.locator("td").all_inner_texts()
    assert cells[0].startswith("2026-11-10 08:40")  # when the walk happened, then booked
    assert cells[2] == f"+{walk_g:,} g"
    assert (cells[3], cells[4]) == ("amap", "Walking")
    shot(me, f"review-citizen-decided-{db}")
    citizen.close()

    # amap's receipts follow, over the API and in the CSV export.
    released = receipt(server, amap, "walk-1")
    assert (released["status"], released["reason"], released["reduction_g"]) == (
        "credited",
        "released",
        walk_g,
    )
    assert released["decided_at"]
    rejected = receipt(server, amap, "metro-1")
    assert (rejected["status"], rejected["reason"], rejected["reduction_g"]) == (
        "rejected",
        "rejected_on_review",
        0,
    )
    assert rejected["decided_at"]
    exported = {
        r["record_id"]: r
        for r in csv.DictReader(io.StringIO(cli("receipts", "--platform", "amap")))
    }
    assert (exported["walk-1"]["status"], exported["walk-1"]["reason"]) == ("credited", "released")
    assert (exported["metro-1"]["status"], exported["metro-1"]["reason"]) == (
        "rejected",
        "rejected_on_review",
    )
    assert exported["walk-1"]["decided_at"]
    assert exported["metro-1"]["decided_at"]
    assert not exported["bus-1"]["decided_at"]
    assert "ledger sound" in cli("ledger", "verify")
    assert PHONE not in (tmp_path / "server.log").read_text()
