"""The carbon market at the service level, on SQLite and PostgreSQL: who takes part in a
certification and with which grams, batches and their pool's remainder, replays, blocks of
units split by sales, transfers and retirements, reversals of certified credits drawn from the
pool or a buffer, and the inclusion proof of every credit of a batch. `ledger verify` finds the
ledger sound after each scenario."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from puhui.bootstrap import bootstrap
from puhui.config import Settings
from puhui.domain import market as rules
from puhui.domain.accounts import Outcome
from puhui.domain.consent import Scope
from puhui.domain.errors import InputError, NotFoundError, RefusedError
from puhui.service import admin, consent, ingest, ledger, market, queries, registry, wallet
from tests.builders import event

NOW = datetime(2026, 11, 20, tzinfo=UTC)
OCT, SEP = "2026-10", "2026-09"
METHODOLOGY = "cn-common@1.0.0"
ACME, BETA = "91350100M000100Y43", "91110000MA01ABCDEX"
FULL = 20_000  # 100 kg of paper: the day's cap
SMALL = 10_986  # 50 kg of paper
TINY = 2_197  # 10 kg of paper
KG = {FULL: "100", SMALL: "50", TINY: "10"}
UNIT = rules.UNIT_G


class Town:
    """A platform's citizens with credits, the exchange and two companies; a clock that moves
    only when told."""

    def __init__(self, url: str, tmp: Path) -> None:
        self.now = NOW
        self.app = bootstrap(Settings(url, tmp / "subject.key"), clock=lambda: self.now)
        admin.init(self.app)
        admin.add_platform(self.app, "amap")
        market.add_company(self.app, ACME, "Acme 有限公司")
        market.add_company(self.app, BETA, "Beta 股份有限公司")
        self.numbers = itertools.count(1)

    @staticmethod
    def phone(citizen: int) -> str:
        return f"1380000{citizen:04d}"

    def who(self, citizen: int) -> str:
        return queries.pseudonym_of(self.app, self.phone(citizen))

    def key(self) -> str:
        return f"k-{next(self.numbers)}"

    def credit(self, credits: list[tuple[int, str, int, int]]) -> None:
        """Credit (citizen, month, day, grams) in that order: the older, the lower its seq."""
        records = [
            event(
                f"{citizen}-{month}-{day}",
                subject=self.phone(citizen),
                quantity=KG[grams],
                start=f"{month}-{day:02d}T10:00:00+08:00",
            )
            for citizen, month, day, grams in credits
        ]
        _, receipts = ingest.ingest_records(self.app, "amap", records)
        expected = [g for *_, g in credits]
        assert receipts.column("reduction_g").to_pylist() == expected

    def join(self, citizen: int, days: int = 90, *more: Scope) -> consent.Grant:
        return consent.grant(
            self.app, self.who(citizen), "amap", frozenset({Scope.CERTIFY, *more}), days
        )

    def entry(self, record_id: str) -> int:
        """The credit entry of a record."""
        with self.app.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "select x.id from transfers x join records r on r.seq = x.record_seq "
                        "where r.record_id = :r and x.kind = 'credit'"
                    ),
                    {"r": record_id},
                ).scalar_one()
            )

    def certify(self, period: str = OCT, **options: Any) -> Outcome:
        return market.certify(
            self.app, period, METHODOLOGY, "51", self.key(), "staff:ops", **options
        )

    def balance(self, citizen: int) -> int:
        return wallet.holdings(self.app, self.who(citizen)).balance_g

    def pool_g(self) -> int:
        return sum(int(p["grams"]) for p in registry.reads(self.app).pool())

    def certified(self) -> list[str]:
        """The record ids certified, in their seq order."""
        with self.app.engine.connect() as conn:
            return list(
                conn.execute(
                    text(
                        "select r.record_id from pool_credits p join records r "
                        "on r.seq = p.record_seq order by p.record_seq"
                    )
                ).scalars()
            )

    def blocks(self) -> list[tuple[int, int, str, str | None]]:
        return [(b.first, b.last, b.holder, b.company) for b in registry.blocks(self.app)]


@pytest.fixture
def town(database_url: str, tmp_path: Path) -> Iterator[Town]:
    made = Town(database_url, tmp_path)
    yield made
    assert ledger.verify(made.app) == []
    made.app.close()


def units(town: Town, citizens: int, days: int, first: tuple[int, ...] = ()) -> None:
    """Credit `citizens` citizens, each on `days` days of October (the day's cap, but for the
    first credits' grams given), oldest day first, and have them all take part."""
    grams = iter(first)
    town.credit(
        [(c, OCT, day, next(grams, FULL)) for day in range(1, days + 1) for c in range(citizens)]
    )
    for c in range(citizens):
        town.join(c)


def refused(code: str) -> Any:
    return pytest.raises(RefusedError, check=lambda e: e.code == code)


# --- who takes part, with which grams ---------------------------------------------------------


def test_only_citizens_with_an_active_certify_grant_are_certified(town: Town) -> None:
    town.credit([(c, OCT, day, FULL) for c in range(6) for day in (1, 2, 3)])
    town.join(0)
    grant = town.join(1)
    consent.revoke(town.app, town.who(1), grant.id)
    town.now = NOW - timedelta(days=31)
    town.join(2, 30)  # expired by now
    town.now = NOW
    consent.grant(town.app, town.who(3), "amap", frozenset({Scope.BALANCE, Scope.SPEND}), 90)
    # Citizen 4 granted nothing; citizen 5 granted certify among other scopes.
    town.join(5, 365, Scope.BALANCE, Scope.HISTORY_ALL)
    done = town.certify()
    assert done.result == {
        "period": OCT,
        "methodology": METHODOLOGY,
        "region": "51",
        "credits": 6,
        "citizens": 2,
        "certified_g": 6 * FULL,
        "points": 0,
        "batch": None,
        "pool_g": 6 * FULL,
    }
    assert town.certified() == [f"{c}-{OCT}-{d}" for c in (0, 5) for d in (1, 2, 3)]
    assert [town.balance(c) for c in range(6)] == [0, 3 * FULL, 3 * FULL, 3 * FULL, 3 * FULL, 0]
    # A grant given later takes part in the next certification, with what was not certified.
    town.join(4)
    again = town.certify()
    assert (again.result["credits"], again.result["certified_g"]) == (3, 3 * FULL)
    assert again.result["pool_g"] == 9 * FULL
    # Another month, another region of the grams or methodology: nothing to certify.
    assert town.certify(SEP).result["credits"] == 0
    assert (
        market.certify(town.app, OCT, METHODOLOGY, "44", town.key(), "staff:ops").result["credits"]
        == 0
    )
    assert (
        market.certify(town.app, OCT, "cn-common@0.9.0", "51", town.key(), "ops").result["credits"]
        == 0
    )


def test_input_the_service_refuses(town: Town) -> None:
    with pytest.raises(InputError):
        market.certify(town.app, "2026-13", METHODOLOGY, "51", town.key(), "ops")
    with pytest.raises(InputError):
        market.certify(town.app, OCT, METHODOLOGY, "51", town.key(), "ops", buffer_bp=10_000)
    with pytest.raises(InputError):
        market.add_company(town.app, "91350100M000100Y44", "Wrong check")
    with refused("company_exists"):
        market.add_company(town.app, ACME.lower(), "Acme again")
    with pytest.raises(InputError):
        market.sell(town.app, ACME, 0, "68", town.key(), "ops")
    with pytest.raises(InputError):
        market.sell(town.app, ACME, 1, "68.501", town.key(), "ops")
    with pytest.raises(NotFoundError):
        market.sell(town.app, "91440300MA5FXXXXXM", 1, "68", town.key(), "ops")


def test_a_programme_whose_terms_say_so_certifies_the_credits_it_pays_points_for(
    town: Town,
) -> None:
    """With `--programme`, a programme defined with `certifies` takes every citizen it awarded
    points, for the credits of its platform only, and pays its points for the grams; a
    programme without those terms pays its points to those who granted `certify` only."""
    admin.add_platform(town.app, "didi")
    since = NOW - timedelta(days=60)
    wallet.add_programme(town.app, "green", "Green", Decimal("10"), starts_at=since, certifies=True)
    wallet.add_programme(
        town.app, "amap-miles", "miles", Decimal("2"), platform="amap", starts_at=since,
        certifies=True,
    )  # fmt: skip
    wallet.add_programme(town.app, "plain", "Plain", Decimal("5"), starts_at=since)
    town.credit([(0, OCT, 1, FULL), (1, OCT, 1, FULL)])
    didi = event("d-2", platform="didi", subject=town.phone(2), quantity="100",
                 start=f"{OCT}-03T10:00:00+08:00")  # fmt: skip
    ingest.ingest_records(town.app, "didi", [didi])
    wallet.run_jobs(town.app)
    # A programme without the terms: nobody took part by grant, nothing is certified.
    assert town.certify(programme="plain").result["credits"] == 0
    # amap's programme: amap's citizens, not didi's.
    by_amap = town.certify(programme="amap-miles").result
    assert (by_amap["credits"], by_amap["citizens"], by_amap["points"]) == (2, 2, 2 * 40)
    assert town.certified() == [f"0-{OCT}-1", f"1-{OCT}-1"]
    # The exchange's programme: didi's citizen too, paid 10 points a kg.
    by_green = town.certify(programme="green").result
    assert (by_green["credits"], by_green["points"]) == (1, 200)
    assert town.balance(2) == 0
    assert wallet.holdings(town.app, town.who(2)).points["green"] == 200 + 200
    with pytest.raises(NotFoundError):
        town.certify(programme="no-such-programme")


def test_a_month_is_certified_once_it_is_over(town: Town) -> None:
    """November 2026 ends at midnight China time, 16:00 UTC the day before."""
    town.now = datetime(2026, 11, 30, 15, 59, tzinfo=UTC)
    with pytest.raises(InputError, match="not over yet"):
        town.certify("2026-11")
    town.now = datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert town.certify("2026-11").result["credits"] == 0


def test_spent_grams_are_never_certified(town: Town) -> None:
    """A citizen who retired part of their grams gives only the whole oldest credits their
    account still holds: not a later, smaller one that would fit."""
    town.credit([(0, OCT, 1, FULL), (0, OCT, 2, FULL), (0, OCT, 3, TINY)])
    wallet.retire(town.app, town.who(0), 15_000, town.key(), "test")
    assert town.balance(0) == 2 * FULL + TINY - 15_000
    town.join(0)
    done = town.certify()
    assert (done.result["credits"], done.result["certified_g"]) == (1, FULL)
    assert town.certified() == [f"0-{OCT}-1"]
    assert town.balance(0) == FULL + TINY - 15_000
    # What is left still does not hold the next credit: nothing more, ever, from these grams.
    assert town.certify().result["credits"] == 0
    assert town.balance(0) == FULL + TINY - 15_000


def test_a_credit_is_certified_once_and_the_pools_remainder_joins_the_next_batch(
    town: Town,
) -> None:
    # 12 citizens, 5 days of October: one small credit first, 1 190 986 g in all.
    units(town, 12, 5, first=(SMALL,))
    done = town.certify()
    batch = done.result["batch"]
    assert done.result["certified_g"] == 59 * FULL + SMALL
    assert batch["units"] == 1
    assert batch["buffer_units"] == 1  # 5 % of one unit, rounded up
    assert batch["serial"] == f"CN-PH-BJ-CN-COMMON.V1.0.0-{OCT}-1-1"
    # The small credit and 49 whole ones, and 9 014 g of the 51st: split there.
    assert batch["leaves"] == 51
    assert done.result["pool_g"] == 59 * FULL + SMALL - UNIT
    # Certifying the month again certifies nothing new, and the pool waits.
    again = town.certify()
    assert (again.result["credits"], again.result["batch"]) == (0, None)
    assert again.result["pool_g"] == done.result["pool_g"]
    # September's credits arrive: the pool's remainder, oldest first, joins their batch.
    town.credit([(c, SEP, day, FULL) for day in range(1, 5) for c in range(12)])
    sep = town.certify(SEP)
    assert sep.result["credits"] == 48
    second = sep.result["batch"]
    assert second["serial"] == f"CN-PH-BJ-CN-COMMON.V1.0.0-{SEP}-2-2"
    # The split credit's 10 986 g, 9 October credits, 40 September ones and part of one more.
    assert second["leaves"] == 1 + 9 + 41
    assert sep.result["pool_g"] == 59 * FULL + SMALL + 48 * FULL - 2 * UNIT
    leaves = [registry.reads(town.app).leaves(b.id) for b in registry.batches(town.app)]
    split = leaves[0][-1]
    assert (split["record_id"], split["grams"]) == (leaves[1][0]["record_id"], 9_014)
    assert leaves[1][0]["grams"] == FULL - 9_014
    assert [leaf["grams"] for leaf in leaves[1][1:-1]] == [FULL] * 49
    assert leaves[1][-1]["grams"] == UNIT - (FULL - 9_014) - 49 * FULL
    # Each credit once in the pool, its grams in the batches never more than it has.
    certified = town.certified()
    assert len(certified) == len(set(certified)) == 60 + 48
    with town.app.engine.connect() as conn:
        over = conn.execute(
            text(
                "select count(*) from pool_credits p where p.grams < (select sum(c.grams) "
                "from batch_credits c where c.record_seq = p.record_seq)"
            )
        ).scalar_one()
    assert over == 0


# --- replays ----------------------------------------------------------------------------------


def test_a_request_sent_again_is_answered_as_the_first_time(town: Town) -> None:
    units(town, 20, 15)  # 6 000 000 g: six units, one of them withheld
    first = market.certify(town.app, OCT, METHODOLOGY, "51", "c-1", "staff:ops")
    again = market.certify(town.app, OCT, METHODOLOGY, "51", "c-1", "staff:ops")
    assert again.replayed
    assert (again.operation, again.result) == (first.operation, first.result)
    assert len(registry.batches(town.app)) == 1
    with refused("idempotency_conflict"):
        market.certify(town.app, SEP, METHODOLOGY, "51", "c-1", "staff:ops")
    with refused("idempotency_conflict"):
        market.certify(town.app, OCT, METHODOLOGY, "51", "c-1", "staff:ops", buffer_bp=0)

    sold = market.sell(town.app, ACME, 3, "68.50", "s-1", "staff:ops")
    assert sold.result["unit_price_fen"] == 6_850
    resent = market.sell(town.app, ACME, 3, "68.50", "s-1", "staff:ops")
    assert resent.replayed
    assert (resent.operation, resent.result) == (sold.operation, sold.result)
    with refused("idempotency_conflict"):
        market.sell(town.app, ACME, 2, "68.50", "s-1", "staff:ops")
    with refused("idempotency_conflict"):
        market.sell(town.app, ACME, 3, "68.51", "s-1", "staff:ops")

    moved = market.transfer(town.app, ACME, BETA, 2, "t-1", "company:acme")
    assert market.transfer(town.app, ACME, BETA, 2, "t-1", "company:acme").result == moved.result
    with refused("idempotency_conflict"):
        market.transfer(town.app, ACME, BETA, 1, "t-1", "company:acme")
    # A company's keys are its own: Beta's "t-1" is another request.
    back = market.transfer(town.app, BETA, ACME, 1, "t-1", "company:beta")
    assert not back.replayed

    retired = market.retire(town.app, ACME, 1, "Acme", "2026 report", "r-1", "company:acme")
    twice = market.retire(town.app, ACME, 1, "Acme", "2026 report", "r-1", "company:acme")
    assert twice.replayed
    assert twice.result == retired.result
    assert twice.result["certificate"] == retired.result["certificate"]
    with refused("idempotency_conflict"):
        market.retire(town.app, ACME, 1, "Acme", "another purpose", "r-1", "company:acme")
    # Nothing moved twice: Acme bought 3, gave 2, got 1 back, retired 1.
    acme = registry.company(town.app, ACME)
    assert (acme.held, acme.retired) == (1, 1)
    assert registry.company(town.app, BETA).held == 1
    assert len(registry.retirements(town.app)) == 1


# --- blocks of units --------------------------------------------------------------------------


def serial_of(first: int, last: int) -> str:
    return rules.serial("BJ", METHODOLOGY, OCT, first, last)


def test_partial_moves_split_serial_blocks_exactly_and_a_retired_unit_never_moves(
    town: Town,
) -> None:
    units(town, 20, 15)
    town.certify()
    assert town.blocks() == [(1, 5, "exchange", None), (6, 6, "buffer", None)]
    assert market.sell(town.app, ACME, 4, "68", town.key(), "ops").result["serials"] == [
        serial_of(1, 4)
    ]
    assert market.transfer(town.app, ACME, BETA, 2, town.key(), "acme").result["serials"] == [
        serial_of(1, 2)
    ]
    retired = market.retire(town.app, ACME, 1, "Acme", "report", town.key(), "acme")
    assert retired.result["serials"] == [serial_of(3, 3)]
    assert market.retire(town.app, BETA, 1, "Beta", "report", town.key(), "beta").result[
        "serials"
    ] == [serial_of(1, 1)]
    assert market.sell(town.app, BETA, 1, "70", town.key(), "ops").result["serials"] == [
        serial_of(5, 5)
    ]
    assert town.blocks() == [
        (1, 1, "retired", BETA),
        (2, 2, "company", BETA),
        (3, 3, "retired", ACME),
        (4, 4, "company", ACME),
        (5, 5, "company", BETA),
        (6, 6, "buffer", None),
    ]
    # Beta's lowest two: not adjacent, two serial numbers.
    assert market.transfer(town.app, BETA, ACME, 2, town.key(), "beta").result["serials"] == [
        serial_of(2, 2),
        serial_of(5, 5),
    ]
    # Acme holds 2, 4 and 5; retiring 2 of them splits its holding where the count ends.
    assert market.retire(town.app, ACME, 2, "Acme", "report", town.key(), "acme").result[
        "serials"
    ] == [serial_of(2, 2), serial_of(4, 4)]
    assert town.blocks() == [
        (1, 1, "retired", BETA),
        (2, 2, "retired", ACME),
        (3, 3, "retired", ACME),
        (4, 4, "retired", ACME),
        (5, 5, "company", ACME),
        (6, 6, "buffer", None),
    ]
    # Retired units never move: not to another company, not retired twice.
    with refused("insufficient_units"):
        market.transfer(town.app, BETA, ACME, 1, town.key(), "beta")
    with refused("insufficient_units"):
        market.retire(town.app, ACME, 2, "Acme", "again", town.key(), "acme")
    with refused("insufficient_units"):
        market.sell(town.app, ACME, 1, "68", town.key(), "ops")  # the buffer is not for sale
    with refused("same_company"):
        market.transfer(town.app, ACME, ACME, 1, town.key(), "acme")
    with pytest.raises(NotFoundError):
        market.transfer(town.app, ACME, "91440300MA5FXXXXXM", 1, town.key(), "acme")
    before = town.blocks()
    market.retire(town.app, ACME, 1, "Acme", "last", town.key(), "acme")
    assert town.blocks() == [*before[:4], (5, 5, "retired", ACME), before[5]]
    # Each retirement's certificate names its units.
    shown = {r.certificate: r.serials for r in registry.retirements(town.app)}
    assert shown[retired.result["certificate"]] == [serial_of(3, 3)]
    assert registry.retirement(town.app, retired.result["certificate"]).units == 1
    acme, beta = registry.company(town.app, ACME), registry.company(town.app, BETA)
    assert (acme.held, acme.retired, beta.held, beta.retired) == (0, 4, 0, 1)
    view = registry.batches(town.app)[0]
    held = {"exchange": 0, "company": 0, "buffer": 1, "retired": 5, "cancelled": 0, "abroad": 0}
    assert view.held == held
    # A batch is found by its id, its serial number or the serial number of any of its units.
    for name in ("1", view.serial, serial_of(4, 4)):
        assert registry.batch(town.app, name).id == view.id
    with pytest.raises(NotFoundError):
        registry.batch(town.app, serial_of(7, 7))
    with pytest.raises(InputError):
        registry.batch(town.app, "CN-PH-1")


# --- reversals --------------------------------------------------------------------------------


def test_a_certified_credit_is_reversed_by_the_market_not_on_the_account(town: Town) -> None:
    town.credit([(0, OCT, 1, FULL), (0, OCT, 2, FULL), (1, OCT, 1, FULL)])
    town.join(0)
    town.certify()
    certified = town.entry(f"0-{OCT}-1")
    with refused("certified"):
        wallet.reverse(town.app, certified, town.key(), "staff:ops", "found wrong")
    # A credit not certified is reversed on the account, and is then never certified.
    plain = town.entry(f"1-{OCT}-1")
    with refused("not_certified"):
        market.reverse_credit(town.app, plain, "found wrong", town.key(), "staff:ops")
    wallet.reverse(town.app, plain, town.key(), "staff:ops", "found wrong")
    town.join(1)
    assert town.certify().result["credits"] == 0
    with refused("not_certified"):
        market.reverse_credit(town.app, plain, "found wrong", town.key(), "staff:ops")
    with pytest.raises(NotFoundError):
        market.reverse_credit(town.app, 10**9, "found wrong", town.key(), "staff:ops")


def reverse(town: Town, record_id: str) -> dict[str, Any]:
    return market.reverse_credit(
        town.app, town.entry(record_id), "found fraudulent", town.key(), "staff:ops"
    ).result


def test_a_reversal_draws_from_the_pool_then_the_buffer_and_records_the_shortfall(
    town: Town,
) -> None:
    # 3 units (one withheld) and 190 986 g left in the pool: the small credit first.
    units(town, 20, 8, first=(SMALL,))
    done = town.certify()
    assert done.result["batch"]["units"] == 3
    assert done.result["batch"]["buffer_units"] == 1
    assert town.pool_g() == 159 * FULL + SMALL - 3 * UNIT
    issued = registry.batches(town.app)[0]

    # Grams still in the pool go back from the pool.
    in_pool = reverse(town, f"19-{OCT}-8")
    assert in_pool["draws"] == [{"batch": None, "grams": FULL, "drawn_g": FULL}]
    assert town.pool_g() == 158 * FULL + SMALL - 3 * UNIT
    with refused("already_reversed"):
        reverse(town, f"19-{OCT}-8")

    # In the batch: drawn from its buffer, whose unit is no longer backed and is cancelled.
    first = reverse(town, f"0-{OCT}-1")
    assert first["draws"] == [
        {
            "batch": issued.serial,
            "grams": SMALL,
            "drawn_g": SMALL,
            "shortfall_g": 0,
            "units_cancelled": 1,
        }
    ]
    assert town.blocks()[-1] == (3, 3, "cancelled", None)
    # 49 credits more drawn whole; the buffer holds 9 014 g, less than the next credit.
    for citizen in range(1, 20):
        assert reverse(town, f"{citizen}-{OCT}-1")["draws"][0]["shortfall_g"] == 0
    for citizen in range(30):
        assert (
            reverse(town, f"{citizen % 20}-{OCT}-{2 + citizen // 20}")["draws"][0]["shortfall_g"]
            == 0
        )
    short = reverse(town, f"10-{OCT}-3")["draws"][0]
    assert short == {
        "batch": issued.serial,
        "grams": FULL,
        "drawn_g": UNIT - SMALL - 49 * FULL,
        "shortfall_g": FULL - (UNIT - SMALL - 49 * FULL),
        "units_cancelled": 0,
    }
    assert reverse(town, f"11-{OCT}-3")["draws"][0]["shortfall_g"] == FULL
    view = registry.batches(town.app)[0]
    assert view.drawn_g == UNIT
    assert view.shortfall_g == 2 * FULL - (UNIT - SMALL - 49 * FULL)
    held = {"exchange": 2, "company": 0, "buffer": 0, "retired": 0, "cancelled": 1, "abroad": 0}
    assert view.held == held
    # The issuing account has its grams back, the citizens keep nothing of them.
    assert town.balance(0) == 0


def test_a_batch_without_a_buffer_records_every_reversal_as_a_shortfall(town: Town) -> None:
    units(town, 10, 5)  # 1 000 000 g: one unit, nothing withheld
    done = town.certify(buffer_bp=0)
    assert (done.result["batch"]["units"], done.result["batch"]["buffer_units"]) == (1, 0)
    market.sell(town.app, ACME, 1, "68", town.key(), "ops")
    drawn = reverse(town, f"3-{OCT}-2")["draws"]
    assert drawn == [
        {
            "batch": rules.serial("BJ", METHODOLOGY, OCT, 1, 1),
            "grams": FULL,
            "drawn_g": 0,
            "shortfall_g": FULL,
            "units_cancelled": 0,
        }
    ]
    # The buyer keeps its unit.
    assert registry.company(town.app, ACME).held == 1
    assert registry.batches(town.app)[0].shortfall_g == FULL


def test_a_credit_split_between_two_batches_draws_on_both(town: Town) -> None:
    units(town, 12, 5, first=(SMALL,))
    town.certify()
    town.credit([(c, SEP, day, FULL) for day in range(1, 5) for c in range(12)])
    town.certify(SEP)
    first, second = registry.batches(town.app)
    split = registry.reads(town.app).leaves(first.id)[-1]["record_id"]
    assert registry.reads(town.app).leaves(second.id)[0]["record_id"] == split
    drawn = reverse(town, split)["draws"]
    assert [(d["batch"], d["grams"], d["shortfall_g"]) for d in drawn] == [
        (first.serial, 9_014, 0),
        (second.serial, FULL - 9_014, 0),
    ]
    assert [d["units_cancelled"] for d in drawn] == [1, 1]


# --- proofs -----------------------------------------------------------------------------------


def test_every_credit_of_a_batch_has_a_proof_and_nothing_altered_verifies(town: Town) -> None:
    units(town, 12, 5, first=(SMALL,))
    town.certify()
    town.credit([(c, SEP, day, FULL) for day in range(1, 5) for c in range(12)])
    town.certify(SEP)
    roots = {b.serial: b.root for b in registry.batches(town.app)}
    with town.app.engine.connect() as conn:
        credits = conn.execute(
            text(
                "select distinct r.record_id, r.subject_id from batch_credits c "
                "join records r on r.seq = c.record_seq order by r.record_id"
            )
        ).all()
    assert len(credits) == 51 + 50
    proofs = 0
    for record_id, _ in credits:
        citizen = int(record_id.split("-")[0])
        found = registry.proofs(town.app, town.who(citizen), town.entry(record_id))
        for document in found:
            proofs += 1
            root = roots[document["batch"]]
            assert registry.check_proof(document) is None
            assert registry.check_proof(document, root) is None
            assert document["leaf"]["record_id"] == record_id
            altered: list[dict[str, Any]] = [
                {**document, "leaf": {**document["leaf"], "grams": document["leaf"]["grams"] + 1}},
                {**document, "leaf": {**document["leaf"], "record_id": record_id + "x"}},
                {**document, "leaf": {**document["leaf"], "platform": "didi"}},
                {**document, "root": "00" * 32},
                {**document, "leaf_index": (document["leaf_index"] + 1) % document["tree_size"]},
            ]
            if document["path"]:
                altered.append({**document, "path": ["00" * 32, *document["path"][1:]]})
            for wrong in altered:
                assert registry.check_proof(wrong) is not None, wrong
            assert registry.check_proof(document, "00" * 32) is not None
            assert registry.check_proof({**document, "format": "x"}) is not None
            assert registry.check_proof({**document, "leaf": {"grams": 1}}) is not None
    # The split credits have a proof for each batch they are in.
    assert proofs == 51 + 51
    # Not in a batch (yet): no proof; another citizen's credit: not theirs.
    waiting = f"11-{SEP}-4"
    with pytest.raises(NotFoundError, match="not in a certified batch"):
        registry.proofs(town.app, town.who(11), town.entry(waiting))
    with pytest.raises(NotFoundError, match="no credit"):
        registry.proofs(town.app, town.who(1), town.entry(f"0-{OCT}-2"))
