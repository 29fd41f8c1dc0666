"""Every check of `ledger verify` fires: on a small settled ledger (credits, a capped credit, a
duplicate, a rejection, points, a tree, a coupon, a retirement, a gift and its reversal), each
check's forgery is planted with raw SQL past the append-only triggers, and verify names it.

A check without a forgery here (or in the module that forges the commits' hash chain) fails
`test_every_check_has_a_forgery`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.review import Decision
from puhui.service import admin, ingest, ledger, queries, review, wallet
from tests.builders import event, trip
from tests.forging import forge
from tests.integration.test_market_forgeries import MARKET_CHECKS
from tests.integration.test_restatement import RESTATEMENT_CHECKS

ALICE, BOB = "13800138000", "13900139000"
NOW = datetime(2026, 11, 1, tzinfo=UTC)

# Checks forged by the tests of the commits' hash chain, of the carbon market and of
# restatements, not here.
FORGED_ELSEWHERE: frozenset[str] = (
    frozenset({"transfer_uncommitted", "commit_altered", "chain_broken", "checkpoint_invalid"})
    | MARKET_CHECKS
    | RESTATEMENT_CHECKS
)


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """A settled ledger of every kind of movement; `ledger verify` finds it sound."""
    instance = bootstrap(Settings(database_url, tmp_path / "subject.key"), clock=lambda: NOW)
    admin.init(instance)
    admin.add_platform(instance, "amap")
    admin.add_platform(instance, "didi")
    wallet.add_programme(instance, "green", "Green points", Decimal("10"))
    _, receipts = ingest.ingest_records(
        instance,
        "amap",
        [
            # Paper in Chengdu: the day's cap of 20 000 g binds on the second.
            event("r1", subject=ALICE, quantity="50"),
            event("r2", subject=ALICE, quantity="50", start="2026-10-02T11:00:00+08:00"),
            event("b1", subject=BOB, quantity="10"),
            trip("t1", subject=ALICE, ref="ticket-1"),
            trip(
                "t2",
                subject=ALICE,
                ref="ticket-2",
                start="2026-10-01T18:00:00+08:00",
                end="2026-10-01T18:20:00+08:00",
            ),
            trip("bad", subject=BOB, distance_km=300),
        ],
    )
    assert receipts.column("status").to_pylist() == ["credited"] * 5 + ["rejected"]
    assert receipts.column("reason").to_pylist()[1] == "capped"
    # The same ride sent by another platform a minute later.
    _, dup = ingest.ingest_records(
        instance,
        "didi",
        [
            trip(
                "d1",
                platform="didi",
                subject=ALICE,
                start="2026-10-01T08:01:00+08:00",
                end="2026-10-01T08:21:00+08:00",
            )
        ],
    )
    assert dup.column("status").to_pylist() == ["duplicate"]
    wallet.run_jobs(instance)
    wallet.add_reward(instance, "saxaul", "A saxaul", "tree", "SEE", price_g=100, stock=40)
    wallet.add_reward(instance, "coffee", "Coffee", "coupon", "cafe", price_g=50)
    wallet.add_codes(instance, "coffee", ["C-1", "C-2", "C-3"])
    alice, bob = _p(instance, ALICE), _p(instance, BOB)
    wallet.redeem(instance, alice, "saxaul", "k-tree", "test")
    wallet.redeem(instance, alice, "coffee", "k-coffee", "test")
    wallet.retire(instance, alice, 100, "k-retire", "test")
    gift = wallet.transfer(instance, alice, bob, 100, "k-gift", "test")
    wallet.reverse(instance, gift.result["entry"], "k-undo", "staff:ops", "sent by mistake")
    # Metro rides in Shenzhen reported by the map app wait for the operator's word (spec v1.1):
    # one stays held, one is released by a reviewer, one is rejected.
    _, held = ingest.ingest_records(
        instance,
        "amap",
        [
            _sz_metro("h1", ALICE, "07:00"),
            _sz_metro("h2", BOB, "06:00"),
            _sz_metro("h3", ALICE, "05:00"),
        ],
    )
    assert held.column("status").to_pylist() == ["held"] * 3
    seqs = _seqs(instance, "h2", "h3")
    review.decide_held(instance, [seqs["h2"]], Decision.RELEASE, "ops", "operator confirmed")
    review.decide_held(instance, [seqs["h3"]], Decision.REJECT, "ops", "no gate tap")
    assert ledger.verify(instance) == []
    yield instance
    instance.close()


def _sz_metro(record_id: str, subject: str, at: str) -> dict[str, object]:
    """A 12 km metro ride in Shenzhen on 1 November 2026 at `at` (China time)."""
    hour = int(at[:2])
    return trip(
        record_id,
        subject=subject,
        scene="metro",
        region="440300",
        distance_km="12",
        start=f"2026-11-01T{at}:00+08:00",
        end=f"2026-11-01T{hour:02d}:30:00+08:00",
    )


def _seqs(app: App, *record_ids: str) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {
            r: int(
                conn.execute(text(f"select seq from records where record_id = '{r}'")).scalar_one()
            )
            for r in record_ids
        }


def _p(app: App, subject: str) -> str:
    return queries.pseudonym_of(app, subject)


def _seq(record_id: str) -> str:
    return f"(select seq from records where record_id = '{record_id}')"


# Bob's citizen account.
BOB_ACCOUNT = (
    "(select a.id from accounts a where a.kind = 'citizen' and a.subject_id = "
    "(select subject_id from records where record_id = 'b1'))"
)


def _without_check(engine: Engine, table: str, name: str) -> tuple[str, ...]:
    """Statements that let rows break a CHECK constraint of the database."""
    if engine.dialect.name == "sqlite":
        return ("pragma ignore_check_constraints = on",)
    return (f"alter table {table} drop constraint ck_{table}_{name}",)


def _checks_back(engine: Engine) -> tuple[str, ...]:
    return ("pragma ignore_check_constraints = off",) if engine.dialect.name == "sqlite" else ()


@dataclass(frozen=True)
class Forgery:
    """What a check guards, broken: statements for `forge` on a given engine."""

    statements: Callable[[Engine], tuple[str, ...]]


def _plain(*statements: str) -> Forgery:
    return Forgery(lambda _engine: statements)


def _changed_factor(engine: Engine) -> tuple[str, ...]:
    """A factor's value raised in the calculation of Bob's credit, its digest left alone."""
    with engine.connect() as conn:
        qid, trace = conn.execute(
            text(
                "select q.id, q.trace from quantifications q join records r "
                "on r.quantification_id = q.id where r.record_id = 'b1'"
            )
        ).one()
    calc = json.loads(trace)
    factor = next(n for n in calc["names"] if n["factor_id"])
    factor["value"] = str(Decimal(factor["value"]) * 2)
    forged = json.dumps(calc, ensure_ascii=False, sort_keys=True).replace("'", "''")
    return (f"update quantifications set trace = '{forged}' where id = {qid}",)


def _consistent_inflation(engine: Engine) -> tuple[str, ...]:
    """Bob's credit raised by 1 000 g everywhere it shows: record, transfer, both balances and
    every tally it is counted in."""
    with engine.connect() as conn:
        platform = conn.execute(text("select id from platforms where code = 'amap'")).scalar_one()
    counted = (
        "(dimension = 'all' and key = '') "
        f"or (dimension = 'platform' and key = '{platform}') "
        "or (dimension = 'region' and key = '510100') "
        "or (dimension = 'province' and key = '510000') "
        "or (dimension = 'scene' and key = 'recycling') "
        "or (dimension = 'day' and key = '2026-10-02') "
        "or (dimension = 'month' and key = '2026-10')"
    )
    credit = f"(select id from transfers where record_seq = {_seq('b1')})"
    return (
        "update records set reduction_g = reduction_g + 1000 where record_id = 'b1'",
        f"update transfers set amount = amount + 1000 where id = {credit}",
        "update balances set balance_g = balance_g + 1000 "
        f"where account_id = (select credit_account_id from transfers where id = {credit})",
        "update balances set balance_g = balance_g - 1000 "
        f"where account_id = (select debit_account_id from transfers where id = {credit})",
        "update tallies set grams = grams + 1000 "
        f"where status = 'credited' and reason = '' and ({counted})",
    )


# One forgery of what each check guards.
FORGERIES: dict[str, Forgery] = {
    "transfer_not_positive": Forgery(
        lambda e: (
            *_without_check(e, "transfers", "positive"),
            "update transfers set amount = 0 where id = (select max(id) from transfers)",
            *_checks_back(e),
        )
    ),
    "balance_mismatch": _plain(
        f"update balances set balance_g = balance_g + 7 where account_id = {BOB_ACCOUNT}"
    ),
    "ledger_total": _plain(
        "update balances set balance_g = balance_g + 7 "
        "where account_id = (select min(id) from accounts where kind = 'issuance')"
    ),
    "credit_missing": _plain(f"delete from transfers where record_seq = {_seq('b1')}"),
    "credit_without_credited_record": _plain(
        "update records set status = 'rejected', reason = 'speed_implausible', "
        "reduction_g = 0 where record_id = 'b1'"
    ),
    "credit_amount_mismatch": _plain(
        f"update transfers set amount = amount + 1 where record_seq = {_seq('b1')}"
    ),
    "balance_orphaned": _plain("insert into balances (account_id, balance_g) values (999999, 0)"),
    "account_orphaned": _plain(f"update accounts set subject_id = 999999 where id = {BOB_ACCOUNT}"),
    "transfer_orphaned": _plain(
        "update transfers set credit_account_id = 999999 "
        "where id = (select max(id) from transfers where reverses is not null)"
    ),
    "record_orphaned": _plain("update records set batch_id = 999999 where record_id = 'bad'"),
    "transfer_mixed_units": _plain(
        "update transfers set credit_account_id = "
        "(select min(id) from accounts where unit = 'pt') "
        "where id = (select max(id) from transfers where reverses is not null)"
    ),
    "balance_negative": _plain(
        f"update balances set balance_g = -5 where account_id = {BOB_ACCOUNT}"
    ),
    "retired_taken_out": _plain(
        "update transfers set debit_account_id = credit_account_id, "
        "credit_account_id = debit_account_id "
        "where credit_account_id = (select id from accounts where kind = 'retired')"
    ),
    "reversal_mismatch": _plain(
        "update transfers set amount = amount + 1 where reverses is not null"
    ),
    "stock_mismatch": _plain(
        "update reward_stock set taken = taken + 1 where reward_id = "
        "(select id from rewards where code = 'saxaul') and shard = "
        "(select min(shard) from reward_stock where reward_id = "
        "(select id from rewards where code = 'saxaul'))"
    ),
    "ref_credited_twice": _plain(
        "drop index uq_records_credited_ref",
        "update records set ref = 'ticket-1' where record_id = 't2'",
    ),
    "trip_credited_twice": _plain(
        "update records set start_ms = (select start_ms from records where record_id = 't1'), "
        "end_ms = (select end_ms from records where record_id = 't1') where record_id = 't2'"
    ),
    "tally_mismatch": _plain(
        "update tallies set grams = grams + 1 "
        "where dimension = 'all' and status = 'credited' and reason = ''"
    ),
    "calculation_altered": _plain(
        "update quantifications set reduction_per_unit = reduction_per_unit * 2 "
        "where id = (select quantification_id from records where record_id = 'b1')"
    ),
    "credit_not_recomputable": _plain(
        "update records set amount_milli = amount_milli * 100 where record_id = 'b1'"
    ),
    "hold_missing": _plain(f"delete from holds where record_seq = {_seq('h1')}"),
    "hold_mismatch": _plain(
        "update transfers set amount = amount + 1 "
        f"where kind = 'hold' and record_seq = {_seq('h1')}"
    ),
    "hold_decision_mismatch": _plain(
        f"update holds set outcome = 'rejected' where record_seq = {_seq('h2')}"
    ),
    "pending_settled_wrongly": _plain(
        "update transfers set credit_account_id = (select a.id from accounts a "
        "where a.kind = 'citizen' and a.subject_id = "
        "(select subject_id from records where record_id = 'r1')) where kind = 'release'"
    ),
}


def test_every_check_has_a_forgery() -> None:
    """A check added to `ledger verify` is proven to fire, here or in the chain's tests."""
    assert set(FORGERIES) == set(ledger.CHECKS) - FORGED_ELSEWHERE
    assert set(ledger.CHECKS) >= FORGED_ELSEWHERE


@pytest.mark.parametrize("check", list(FORGERIES))
def test_verify_finds_the_forgery_each_check_guards(app: App, check: str) -> None:
    """The sound ledger passes; with what the check guards forged, verify names the check."""
    forge(app.engine, *FORGERIES[check].statements(app.engine))
    found = {v.check: v for v in ledger.verify(app)}
    assert check in found, sorted(found)
    assert found[check].count >= 1
    assert found[check].examples


# Forgeries that only re-deriving each credit from its stored inputs and the catalogue finds,
# and the check that finds each.
REDERIVED: dict[str, tuple[Forgery, str]] = {
    "amount_times_100": (
        _plain("update records set amount_milli = amount_milli * 100 where record_id = 'b1'"),
        "credit_not_recomputable",
    ),
    "factor_changed_in_a_calculation": (Forgery(_changed_factor), "calculation_altered"),
    "consistent_inflation": (Forgery(_consistent_inflation), "credit_not_recomputable"),
    "capped_credit_raised_to_its_computation": (
        _plain(
            "update records set reduction_g = reduction_g + 500, reason = '' where record_id = 'r2'"
        ),
        "credit_not_recomputable",
    ),
    "credit_pointed_at_another_calculation": (
        _plain(
            "update records set quantification_id = "
            "(select quantification_id from records where record_id = 't1') "
            "where record_id = 'b1'"
        ),
        "credit_not_recomputable",
    ),
    "calculation_pinned_to_another_version": (
        _plain(
            "update quantifications set methodology = 'cn-common@0.9.0' "
            "where id = (select quantification_id from records where record_id = 'b1')"
        ),
        "calculation_altered",
    ),
}


@pytest.mark.parametrize("forgery", list(REDERIVED))
def test_verify_rederives_every_credit(app: App, forgery: str) -> None:
    """Forgeries that keep every sum consistent are found by re-deriving each credit: the
    amount, the factors, the cap, the calculation a credit points at."""
    planted, check = REDERIVED[forgery]
    forge(app.engine, *planted.statements(app.engine))
    found = {v.check: v for v in ledger.verify(app)}
    assert check in found, sorted(found)
    with app.engine.connect() as conn:
        b1, r2 = (
            str(conn.execute(text(f"select seq from records where record_id = '{r}'")).scalar())
            for r in ("b1", "r2")
        )
        qid = str(
            conn.execute(
                text("select quantification_id from records where record_id = 'b1'")
            ).scalar()
        )
    if check == "credit_not_recomputable":
        assert found[check].examples == ((r2,) if "capped" in forgery else (b1,))
    else:
        assert found[check].examples == (qid,)
    if forgery == "consistent_inflation":
        # Every sum agrees: only re-deriving the credit (and the commits' chain) finds it.
        assert not {"balance_mismatch", "ledger_total", "credit_amount_mismatch"} & set(found)
        assert "tally_mismatch" not in found
