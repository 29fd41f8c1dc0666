"""Erasure: no number leads to the account any more, the behaviour details are gone from the
records and from the database's files, the grams stay on an anonymous account and the ledger
still verifies; a later record for the same number starts afresh."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain import china_time
from puhui.domain.errors import InputError, NotFoundError
from puhui.service import admin, erasure, ingest, ledger, queries
from tests.builders import trip
from tests.conftest import NOW

ERASED = "13912345678"
OTHER = "13700001111"
# Strings that appear only in the erased citizen's records.
REF = "TAP-ERASE-778101"
DEVICE = "phone-erase-555023"
LATITUDE = "39.904211"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    instance = bootstrap(Settings(database_url, tmp_path / "subject.key"), clock=lambda: NOW)
    admin.init(instance)
    admin.add_platform(instance, "amap")
    yield instance
    instance.close()


def rides(subject: str, prefix: str, ref: str | None = None) -> list[dict[str, object]]:
    """Three bus rides on 1, 2 and 3 October, the first with evidence, coordinates and device."""
    first = {"ref": ref, "device": DEVICE, "origin_lat": LATITUDE, "origin_lon": "116.407395"}
    return [
        trip(
            f"{prefix}-{day}",
            subject=subject,
            start=f"2026-10-0{day}T08:13:27+08:00",
            end=f"2026-10-0{day}T08:31:05+08:00",
            **(first if day == 1 and ref else {}),
        )
        for day in (1, 2, 3)
    ]


def settle(app: App, records: list[dict[str, object]]) -> list[str]:
    _, receipts = ingest.ingest_records(app, "amap", records)
    return [str(s) for s in receipts.column("status").to_pylist()]


def test_an_erased_citizen_is_found_by_nothing_and_the_ledger_still_holds(app: App) -> None:
    """After erasure the number finds nothing, the records keep only their day, the grams stay
    where they were and verify passes; a new record for the number opens a new account."""
    assert settle(app, rides(ERASED, "e", REF) + rides(OTHER, "o")) == ["credited"] * 6
    before = queries.account(app, ERASED)
    issued = ledger.totals(app).issued_g

    done = erasure.erase_subject(app, ERASED, "operator", "verified request 2026-117")

    assert done.records == 3
    with pytest.raises(NotFoundError):
        queries.account(app, ERASED)
    assert queries.account(app, OTHER).balance_g == before.balance_g
    with app.engine.connect() as conn:
        subject = conn.execute(
            text("select subject_id from erasures where id = :e"), {"e": done.erasure}
        ).scalar_one()
        rows = conn.execute(
            text("select start_ms, end_ms, ref, extra, digest from records where subject_id = :s"),
            {"s": subject},
        ).all()
        held = conn.execute(
            text("select b.balance_g from balances b join accounts a on a.id = b.account_id "
                 "where a.subject_id = :s"),
            {"s": subject},
        ).scalar_one()  # fmt: skip
    assert held == before.balance_g
    for start_ms, end_ms, ref, extra, digest in rows:
        assert start_ms == end_ms == china_time.day_start_ms(china_time.day_of_ms(start_ms))
        assert ref is None
        assert extra is None
        assert set(digest) == {"0"}
    assert ledger.verify(app) == []
    assert ledger.totals(app).issued_g == issued
    assert [e[2:] for e in app.erasures().erasures()] == [
        ("operator", "verified request 2026-117", 3)
    ]

    # A record re-sent under an erased id is not credited again; a new one starts afresh.
    again = rides(ERASED, "e")[1]
    assert settle(app, [again]) != ["credited"]
    assert settle(app, [trip("e-new", subject=ERASED, start="2026-10-05T08:00:00+08:00",
                             end="2026-10-05T08:20:00+08:00")]) == ["credited"]  # fmt: skip
    fresh = queries.account(app, ERASED)
    assert [line.record_id for line in fresh.history] == ["e-new"]
    assert fresh.balance_g < before.balance_g
    assert ledger.verify(app) == []


def test_erasure_needs_a_citizen_and_grounds(app: App) -> None:
    """Nothing to erase, no grounds, or an erasure repeated: each refused with its reason."""
    with pytest.raises(NotFoundError):
        erasure.erase_subject(app, ERASED, "operator", "verified request")
    settle(app, rides(ERASED, "e"))
    with pytest.raises(InputError, match="grounds"):
        erasure.erase_subject(app, ERASED, "operator", "  ")
    erasure.erase_subject(app, ERASED, "citizen", "my own request")
    with pytest.raises(NotFoundError):
        erasure.erase_subject(app, ERASED, "citizen", "my own request")


def test_no_byte_of_the_details_is_left_in_the_sqlite_files(tmp_path: Path) -> None:
    """The evidence reference, device and coordinates are in the database's files before the
    erasure and in none of them after (database and write-ahead log)."""
    app = bootstrap(Settings(f"sqlite:///{tmp_path / 'p.db'}", tmp_path / "k.key"), lambda: NOW)
    admin.init(app)
    admin.add_platform(app, "amap")
    settle(app, rides(ERASED, "e", REF) + rides(OTHER, "o"))

    def found() -> set[str]:
        files = [p.read_bytes() for p in tmp_path.glob("p.db*")]
        return {
            s for s in (REF.casefold(), DEVICE, LATITUDE) if any(s.encode() in f for f in files)
        }

    assert found() == {REF.casefold(), DEVICE, LATITUDE}
    done = erasure.erase_subject(app, ERASED, "operator", "verified request")
    assert done.scrubbed is True
    app.close()
    assert found() == set()


def test_an_operator_erases_over_the_api_and_a_regulator_may_not(app: App) -> None:
    """Operators erase (201, then 404 for the same number), regulators only list erasures;
    the number is in no answer."""
    from fastapi.testclient import TestClient

    from puhui.entrypoints.api.app import create_app
    from puhui.service import oversight

    settle(app, rides(ERASED, "e", REF))
    client = TestClient(create_app(app), raise_server_exceptions=False)
    operator = oversight.issue_staff_token(app, "ops", oversight.Role.OPERATOR).token
    regulator = oversight.issue_staff_token(app, "auditor", oversight.Role.REGULATOR).token
    body = {"subject": ERASED, "grounds": "request 2026-117"}

    def post(token: str) -> Any:
        return client.post(
            "/v1/oversight/erasures", json=body, headers={"Authorization": f"Bearer {token}"}
        )

    assert post(regulator).status_code == 403
    made = post(operator)
    assert made.status_code == 201, made.text
    assert made.json()["records"] == 3
    assert post(operator).status_code == 404
    listed = client.get("/v1/oversight/erasures", headers={"Authorization": f"Bearer {regulator}"})
    assert [e["grounds"] for e in listed.json()] == ["request 2026-117"]
    assert ERASED not in made.text + listed.text


def test_a_citizen_erases_themselves_and_every_grant_ends(app: App) -> None:
    """With their own session a citizen erases themselves (a platform's token may not); the
    platform's token is refused from then on, and the consent ledger no longer leads to them."""
    from fastapi.testclient import TestClient

    from puhui.entrypoints.api.app import create_app
    from puhui.service import consent
    from tests.builders import citizen_session, citizen_token

    settle(app, rides(ERASED, "e", REF))
    client = TestClient(create_app(app), raise_server_exceptions=False)
    platform = {"Authorization": f"Bearer {citizen_token(app, ERASED, scopes=['balance'])}"}
    own = {"Authorization": f"Bearer {citizen_session(app, ERASED)}"}
    pseudonym = queries.pseudonym_of(app, ERASED)
    assert client.get("/v1/me", headers=platform).status_code == 200
    body = {"confirm": "erase my account"}

    assert client.post("/v1/me/erasure", json=body, headers=platform).status_code == 403
    assert client.post("/v1/me/erasure", json={}, headers=own).status_code == 422
    done = client.post("/v1/me/erasure", json=body, headers=own)
    assert done.status_code == 201, done.text
    assert done.json()["records"] == 3

    refused = client.get("/v1/me", headers=platform)
    assert refused.status_code == 403
    assert refused.json()["code"] in {"grant_revoked", "consent_required"}
    assert consent.grants(app, pseudonym) == []
    assert ledger.verify(app) == []
