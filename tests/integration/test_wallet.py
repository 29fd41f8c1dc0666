"""Personal carbon accounts on SQLite and PostgreSQL: points, rewards, redemptions, retirements,
gifts, reversals, expiry, certificates, and the ledger checks that guard them."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain import accounts as rules
from puhui.domain import footprints
from puhui.domain.errors import InputError, NotFoundError, RefusedError
from puhui.service import admin, certificates, ingest, ledger, queries, wallet
from tests.builders import event
from tests.forging import forge

ALICE, BOB = "13800138000", "13900139000"
START = datetime(2026, 11, 1, tzinfo=UTC)


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(database_url: str, tmp_path: Path, clock: Clock) -> Iterator[App]:
    instance = bootstrap(Settings(database_url, tmp_path / "subject.key"), clock=clock)
    admin.init(instance)
    admin.add_platform(instance, "amap")
    yield instance
    instance.close()


def credit(app: App, *records: dict[str, object]) -> list[int]:
    """Ingest records and return the grams each was credited."""
    _, receipts = ingest.ingest_records(app, "amap", list(records))
    assert set(receipts.column("status").to_pylist()) == {"credited"}, receipts.to_pylist()
    return [int(g) for g in receipts.column("reduction_g").to_pylist()]


def recycle(record_id: str, subject: str, kg: str = "10", day: int = 2) -> dict[str, object]:
    """A paper-recycling credit (10 kg: about 2.2 kg CO2e)."""
    return event(record_id, subject=subject, quantity=kg, start=f"2026-10-{day:02d}T10:00:00+08:00")


def p(app: App, subject: str) -> str:
    return queries.pseudonym_of(app, subject)


def test_points_are_awarded_once_and_expire_oldest_first(app: App, clock: Clock) -> None:
    """A programme pays floor(g × rate / 1000) points per credit from its start; the job is
    idempotent; points expire after their validity, spent ones first counted against the
    oldest award."""
    before = credit(app, recycle("old", ALICE))
    clock.now = START + timedelta(minutes=1)
    wallet.add_programme(app, "green", "Green points", Decimal("10"), expiry_days=30)
    assert wallet.run_jobs(app) == wallet.JobReport(0, 0, 0, 0)  # credits before its start

    clock.now = START + timedelta(hours=1)
    grams = credit(app, recycle("r1", ALICE, day=3), recycle("r2", ALICE, "3", day=4))
    expected = sum(g * 10 // 1000 for g in grams)
    report = wallet.run_jobs(app)
    assert (report.awarded_points, report.awarded_credits) == (expected, 2)
    assert wallet.run_jobs(app) == wallet.JobReport(0, 0, 0, 0)
    held = wallet.holdings(app, p(app, ALICE))
    assert held.points == {"green": expected}
    assert held.balance_g == sum(grams) + before[0]  # grams are not spent on points

    # A second award lot, 20 days later; then 5 points are spent.
    clock.now = START + timedelta(days=20)
    later = credit(app, recycle("r3", ALICE, "5", day=5))
    wallet.run_jobs(app)
    wallet.add_reward(app, "tea", "Tea", "donation", "cafe", price_points=5, programme="green")
    wallet.redeem(app, p(app, ALICE), "tea", "k1", "test")

    # Day 31: the first lot has expired, less the 5 spent from it.
    clock.now = START + timedelta(days=31, hours=2)
    report = wallet.run_jobs(app)
    assert (report.expired_points, report.expired_accounts) == (expected - 5, 1)
    assert wallet.run_jobs(app).expired_points == 0
    assert wallet.holdings(app, p(app, ALICE)).points == {"green": later[0] * 10 // 1000}
    assert ledger.verify(app) == []


def test_a_platform_programme_awards_only_its_own_records(app: App) -> None:
    admin.add_platform(app, "didi")
    wallet.add_programme(app, "amap-pts", "amap points", Decimal("1.5"), platform="amap")
    ingest.ingest_records(app, "didi", [event("d1", platform="didi", subject=BOB)])
    grams = credit(app, recycle("a1", ALICE))
    report = wallet.run_jobs(app)
    assert (report.awarded_points, report.awarded_credits) == (int(grams[0] * 1.5 // 1000), 1)
    assert wallet.holdings(app, p(app, BOB)).points == {}


def test_redemption_pays_takes_stock_and_respects_limits(app: App) -> None:
    [grams] = credit(app, recycle("r1", ALICE, "50"))
    wallet.add_reward(
        app, "saxaul", "A saxaul", "tree", "SEE", price_g=1000, stock=2, per_citizen_limit=1,
        project="Alxa 梭梭",
    )  # fmt: skip
    wallet.add_reward(app, "coffee", "Coffee", "coupon", "cafe", price_g=500)
    assert wallet.add_codes(app, "coffee", ["C-1", "C-2", "C-1"]) == 2
    assert wallet.add_codes(app, "coffee", ["C-2", "C-3"]) == 1

    first = wallet.redeem(app, p(app, ALICE), "saxaul", "k-tree", "test")
    assert first.result["tree_number"] == 1
    assert first.result["project"] == "Alxa 梭梭"
    again = wallet.redeem(app, p(app, ALICE), "saxaul", "k-tree", "test")
    assert again.replayed
    assert again.result == first.result
    assert again.operation == first.operation
    with pytest.raises(RefusedError) as limit:
        wallet.redeem(app, p(app, ALICE), "saxaul", "k-tree-2", "test")
    assert limit.value.code == "limit_reached"
    with pytest.raises(RefusedError) as conflict:
        wallet.redeem(app, p(app, ALICE), "coffee", "k-tree", "test")
    assert conflict.value.code == "idempotency_conflict"

    codes = [
        wallet.redeem(app, p(app, ALICE), "coffee", f"k-coffee-{i}", "test").result["coupon_code"]
        for i in range(3)
    ]
    assert codes == ["C-1", "C-2", "C-3"]
    with pytest.raises(RefusedError) as empty:
        wallet.redeem(app, p(app, ALICE), "coffee", "k-coffee-3", "test")
    assert empty.value.code == "out_of_stock"
    assert wallet.get_reward(app, "coffee").remaining == 0
    assert wallet.holdings(app, p(app, ALICE)).balance_g == grams - 1000 - 3 * 500

    # Bob has nothing: refused, and the stock is untouched.
    with pytest.raises(RefusedError) as poor:
        wallet.redeem(app, p(app, BOB), "saxaul", "k-bob", "test")
    assert poor.value.code == "insufficient_balance"
    assert str(poor.value) == "saxaul costs 1000 g; the account holds 0 g"
    assert wallet.get_reward(app, "saxaul").remaining == 1
    assert ledger.verify(app) == []


def test_rewards_have_windows(app: App, clock: Clock) -> None:
    credit(app, recycle("r1", ALICE))
    wallet.add_reward(
        app, "late", "Later", "donation", "fund", price_g=10,
        valid_from=START + timedelta(days=1), valid_to=START + timedelta(days=2),
    )  # fmt: skip
    with pytest.raises(RefusedError) as early:
        wallet.redeem(app, p(app, ALICE), "late", "k1", "test")
    assert early.value.code == "not_available"
    assert wallet.list_rewards(app, available_at=clock.now) == []
    clock.now = START + timedelta(days=1, hours=1)
    assert wallet.redeem(app, p(app, ALICE), "late", "k1", "test").result["price"] == 10
    clock.now = START + timedelta(days=2)
    with pytest.raises(RefusedError):
        wallet.redeem(app, p(app, ALICE), "late", "k2", "test")


def test_retired_grams_are_gone_for_good_with_a_certificate(app: App) -> None:
    [grams] = credit(app, recycle("r1", ALICE, "50"))
    declared = footprints.compute(app.catalogue, "electricity", Decimal("3"), "440300")
    assert declared.terms[0].factor_id.startswith("grid_ef/440000/")  # Guangdong's factor
    assert declared.grams == math.ceil(3 * declared.terms[0].value)  # rounded up
    done = wallet.retire(app, p(app, ALICE), declared.grams, "k1", "test", declared.as_dict())
    held = wallet.holdings(app, p(app, ALICE))
    assert (held.balance_g, held.retired_g) == (grams - declared.grams, declared.grams)

    cert = wallet.verify_certificate(app, done.result["certificate"])
    assert cert.kind == "retirement"
    assert cert.result["footprint"]["terms"][0]["factor_id"] == declared.terms[0].factor_id
    page = certificates.html(cert)
    assert done.result["certificate"] in page
    assert "grid_ef" in page
    assert certificates.pdf(cert).startswith(b"%PDF-")
    forged = done.result["certificate"][:-1] + (
        "0" if done.result["certificate"][-1] != "0" else "1"
    )
    with pytest.raises(NotFoundError):
        wallet.verify_certificate(app, forged)

    # Never reversed, never given away beyond what is left.
    with pytest.raises(RefusedError) as reversal:
        wallet.reverse(app, done.result["entry"], "k2", "staff", "oops")
    assert reversal.value.code == "not_reversible"
    with pytest.raises(RefusedError):
        wallet.transfer(app, p(app, ALICE), p(app, BOB), grams, "k3", "test")
    assert ledger.verify(app) == []


def test_gifts_have_limits_and_can_be_reversed(
    app: App, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(rules.MAX_GIFT, "g", 500)
    monkeypatch.setitem(rules.MAX_GIFTS_PER_DAY, "g", 1000)
    most = rules.MAX_GIFT["g"]
    credit(app, *(recycle(f"r{i}", ALICE, day=i + 1) for i in range(3)))
    alice, bob = p(app, ALICE), p(app, BOB)
    with pytest.raises(RefusedError) as big:
        wallet.transfer(app, alice, bob, most + 1, "k0", "test")
    assert big.value.code == "gift_too_large"
    gift = wallet.transfer(app, alice, bob, most, "k1", "test")
    wallet.transfer(app, alice, bob, most, "k2", "test")
    with pytest.raises(RefusedError) as daily:
        wallet.transfer(app, alice, bob, 1, "k3", "test")
    assert daily.value.code == "daily_gift_limit"
    clock.now += timedelta(days=1)
    wallet.transfer(app, alice, bob, 1, "k3", "test")
    assert wallet.holdings(app, bob).balance_g == 2 * most + 1

    undone = wallet.reverse(app, gift.result["entry"], "undo-1", "staff:ops", "sent by mistake")
    assert undone.result["reversed"] == gift.result["entry"]
    assert wallet.holdings(app, bob).balance_g == most + 1
    with pytest.raises(RefusedError) as twice:
        wallet.reverse(app, gift.result["entry"], "undo-2", "staff:ops", "again")
    assert twice.value.code == "already_reversed"
    with pytest.raises(InputError):
        wallet.transfer(app, alice, alice, 5, "k4", "test")
    assert ledger.verify(app) == []


def test_reversing_a_credit_takes_its_points_back(app: App) -> None:
    wallet.add_programme(app, "green", "Green", Decimal("100"), starts_at=START)
    [grams] = credit(app, recycle("r1", ALICE))
    wallet.run_jobs(app)
    entry = int(
        app.engine.connect()
        .execute(text("select id from transfers where kind = 'credit'"))
        .scalar_one()
    )
    done = wallet.reverse(app, entry, "fraud-1", "staff:ops", "fraud found")
    assert len(done.result["entries"]) == 2
    held = wallet.holdings(app, p(app, ALICE))
    assert (held.balance_g, held.points) == (0, {"green": 0})
    assert grams > 0
    assert ledger.verify(app) == []


def test_verify_finds_retired_grams_taken_out(app: App) -> None:
    """The ledger check is not vacuous: a forged transfer out of a retired account is found."""
    credit(app, recycle("r1", ALICE))
    done = wallet.retire(app, p(app, ALICE), 100, "k1", "test")
    with app.engine.begin() as conn:
        retired = conn.execute(text("select id from accounts where kind = 'retired'")).scalar_one()
        citizen = conn.execute(text("select id from accounts where kind = 'citizen'")).scalar_one()
    forge(
        app.engine,
        text(
            "update transfers set debit_account_id = credit_account_id, "
            "credit_account_id = debit_account_id where id = :e"
        ).bindparams(e=done.result["entry"]),
        text("update balances set balance_g = -100 where account_id = :a").bindparams(a=retired),
        text("update balances set balance_g = balance_g + 200 where account_id = :a").bindparams(
            a=citizen
        ),
    )
    found = {v.check for v in ledger.verify(app)}
    assert {"retired_taken_out", "balance_negative"} <= found


@pytest.mark.parametrize(
    "forgery",
    [
        # A part said to have handed out one more than was redeemed.
        "update reward_stock set taken = taken + 1 where shard = 1 and reward_id = "
        "(select id from rewards where code = 'saxaul')",
        # A coupon code marked handed out that no redemption got.
        "update reward_codes set operation_id = 999 where operation_id is null and reward_id = "
        "(select id from rewards where code = 'coffee')",
        # A part's allotment raised: more stock than the reward was given.
        "update reward_stock set allotted = allotted + 5 where shard = 0 and reward_id = "
        "(select id from rewards where code = 'saxaul')",
    ],
    ids=["taken", "coupon", "allotted"],
)
def test_ledger_verify_recounts_what_each_reward_handed_out(app: App, forgery: str) -> None:
    """What a reward handed out is never kept as a count of its own: verify recounts it from
    the redemptions and from the transfers paid into its parts, and finds a forged one."""
    credit(app, recycle("r1", ALICE), recycle("r2", ALICE, day=2))
    wallet.add_reward(app, "saxaul", "A saxaul", "tree", "SEE", price_g=100, stock=40)
    wallet.add_reward(app, "coffee", "Coffee", "coupon", "cafe", price_g=50)
    wallet.add_codes(app, "coffee", ["C-1", "C-2", "C-3"])
    for i in range(3):
        wallet.redeem(app, p(app, ALICE), "saxaul", f"k-tree-{i}", "test")
    wallet.redeem(app, p(app, ALICE), "coffee", "k-coffee", "test")
    assert ledger.verify(app) == []
    with app.engine.begin() as conn:
        conn.execute(text(forgery))
    found = {v.check: v.examples for v in ledger.verify(app)}
    assert set(found) == {"stock_mismatch"}
    assert found["stock_mismatch"][0] in ("saxaul", "coffee")
