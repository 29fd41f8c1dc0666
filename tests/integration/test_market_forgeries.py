"""Every check `ledger verify` makes of the carbon market fires: on a small market (credits
certified into a pool and a batch of six units, units sold, transferred and retired, a credit
reversed from the pool and one from the buffer, whose unit is cancelled), each way of breaking
what a check guards is planted with raw SQL past the append-only triggers, and verify names
that check, and only it, with what breaks it.

Each gram credited is in one place (`pool_mismatch`, `credit_certified_wrongly`,
`units_not_backed` with the ledger's balance checks), a batch's units are backed by the grams
its credits gave (`units_not_backed`), its serial numbers are partitioned by the blocks of
holdings, retirements, the buffer and cancelled units (`serials_not_partitioned`), blocks are
what the moves left (`holdings_mismatch`), moves are the market's (`unit_move_invalid`), and
the published root is the root of the credits (`batch_root_mismatch`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import exc, text

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.consent import Scope
from puhui.service import admin, consent, ingest, ledger, market, queries
from tests.builders import event
from tests.forging import forge

NOW = datetime(2026, 11, 20, tzinfo=UTC)
OCT = "2026-10"
ACME, BETA = "91350100M000100Y43", "91110000MA01ABCDEX"

# The market's checks, each forged here.
MARKET_CHECKS = frozenset(
    {
        "pool_mismatch",
        "credit_certified_wrongly",
        "units_not_backed",
        "serials_not_partitioned",
        "holdings_mismatch",
        "unit_move_invalid",
        "batch_root_mismatch",
    }
)


def _phone(citizen: int) -> str:
    return f"1380000{citizen:04d}"


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """A sound market: 19 of 20 citizens certified their credits, and batch 1 holds units 1
    to 6. Beta holds unit 1, Acme retired unit 2 and holds unit 3, the exchange holds 4 and 5,
    and the buffer's unit 6 is cancelled after a reversal drew on it; 70 986 g wait in the
    pool, less a credit reversed from it."""
    instance = bootstrap(Settings(database_url, tmp_path / "subject.key"), clock=lambda: NOW)
    admin.init(instance)
    admin.add_platform(instance, "amap")
    market.add_company(instance, ACME, "Acme")
    market.add_company(instance, BETA, "Beta")
    # 20 citizens, 16 days of October: 50 kg of paper first (10 986 g), then the day's cap.
    records = [
        event(
            f"{c}-{day}",
            subject=_phone(c),
            quantity="50" if (c, day) == (0, 1) else "100",
            start=f"{OCT}-{day:02d}T10:00:00+08:00",
        )
        for day in range(1, 17)
        for c in range(20)
    ]
    ingest.ingest_records(instance, "amap", records)
    for c in range(19):  # citizen 19 keeps their grams
        pseudonym = queries.pseudonym_of(instance, _phone(c))
        consent.grant(instance, pseudonym, "amap", frozenset({Scope.CERTIFY}), 90)
    done = market.certify(instance, OCT, "cn-common@1.0.0", "51", "c-1", "staff:ops")
    assert (done.result["batch"]["units"], done.result["batch"]["buffer_units"]) == (6, 1)
    market.sell(instance, ACME, 3, "68", "s-1", "staff:ops")
    market.transfer(instance, ACME, BETA, 1, "t-1", "company:acme")
    market.retire(instance, ACME, 1, "Acme", "2026 report", "r-1", "company:acme")
    for record_id in ("18-16", "0-1"):  # in the pool; in the batch
        market.reverse_credit(instance, _entry(instance, record_id), "fraud", record_id, "ops")
    assert _blocks(instance) == [
        (1, 1, "company", "B"),
        (2, 2, "retired", "A"),
        (3, 3, "company", "A"),
        (4, 5, "exchange", None),
        (6, 6, "cancelled", None),
    ]
    assert ledger.verify(instance) == []
    yield instance
    instance.close()


def _entry(app: App, record_id: str) -> int:
    with app.engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "select x.id from transfers x join records r on r.seq = x.record_seq "
                    "where r.record_id = :r and x.kind = 'credit'"
                ),
                {"r": record_id},
            ).scalar_one()
        )


def _blocks(app: App) -> list[tuple[int, int, str, str | None]]:
    with app.engine.connect() as conn:
        rows = conn.execute(
            text(
                "select k.first, k.last, k.holder, substr(c.name, 1, 1) from unit_blocks k "
                "left join companies c on c.id = k.company_id order by k.first"
            )
        ).all()
    return [(int(a), int(b), str(h), n) for a, b, h, n in rows]


def _one(app: App, sql: str) -> str:
    with app.engine.connect() as conn:
        return str(conn.execute(text(f"select {sql}")).scalar_one())


def _seq(record_id: str) -> str:
    return f"(select seq from records where record_id = '{record_id}')"


POOL = "(select id from accounts where kind = 'pool')"
UNITS = "(select units_account_id from unit_batches where id = 1)"
ISSUANCE = "(select min(id) from accounts where kind = 'issuance')"


def _citizen(record_id: str) -> str:
    """The account of the citizen a record credited."""
    return (
        "(select a.id from accounts a where a.kind = 'citizen' and a.subject_id = "
        f"(select subject_id from records where record_id = '{record_id}'))"
    )


CITIZEN = _citizen("1-1")
ACME_ID = "(select id from companies where uscc = '91350100M000100Y43')"
BETA_ID = "(select id from companies where uscc = '91110000MA01ABCDEX')"


def _moved(source: str, to: str, grams: int) -> tuple[str, ...]:
    """Grams moved from one account to another by a transfer of the ledger's last commit,
    both balances following: every sum of the ledger agrees."""
    return (
        "insert into transfers (kind, debit_account_id, credit_account_id, amount, created_at, "
        f"commit_id) select 'transfer', {source}, {to}, {grams}, created_at, commit_id "
        "from transfers where id = (select max(id) from transfers)",
        f"update balances set balance_g = balance_g - {grams} where account_id = {source}",
        f"update balances set balance_g = balance_g + {grams} where account_id = {to}",
    )


def _move(kind: str, source: tuple[str, str], to: tuple[str, str], first: int, last: int) -> str:
    """A row of `unit_moves` for batch 1, in the certification's operation."""
    return (
        "insert into unit_moves (operation_id, kind, batch_id, first, last, from_holder, "
        f"from_company, to_holder, to_company, at) select operation_id, '{kind}', 1, {first}, "
        f"{last}, {source[0]}, {source[1]}, {to[0]}, {to[1]}, certified_at "
        "from unit_batches where id = 1"
    )


@dataclass(frozen=True)
class Forgery:
    """What a check guards, broken by these statements; what verify must name, by a query
    (or a text) each; other checks the forgery cannot help breaking."""

    check: str
    statements: tuple[str, ...]
    names: tuple[str, ...]
    also: frozenset[str] = frozenset()


FORGERIES: dict[str, Forgery] = {
    # Grams out of the pool into a citizen's account, every balance consistent with it.
    "pool_grams_to_a_citizen": Forgery(
        "pool_mismatch",
        _moved(POOL, CITIZEN, 5_000),
        ("pool:cn-common@1.0.0:51",),
    ),
    # A certified credit erased from the pool: its grams are in no credit's name.
    "pool_credit_deleted": Forgery(
        "pool_mismatch",
        (f"delete from pool_credits where record_seq = {_seq('17-16')}",),
        ("pool:cn-common@1.0.0:51",),
    ),
    # A credit said to be certified from another citizen than the one it credited.
    "certified_from_another_citizen": Forgery(
        "credit_certified_wrongly",
        (
            "update pool_credits set subject_id = (select subject_id from records "
            f"where record_id = '1-1') where record_seq = {_seq('0-2')}",
        ),
        (_seq("0-2"),),
    ),
    # A credit certified after it was reversed on the citizen's account: the reversal forged
    # in, the citizen given the grams it takes back by a gift of another citizen.
    "certified_after_a_reversal": Forgery(
        "credit_certified_wrongly",
        (
            "insert into transfers (kind, debit_account_id, credit_account_id, amount, reverses, "
            "created_at, commit_id) select 'reversal', credit_account_id, debit_account_id, "
            "amount, id, created_at, (select max(commit_id) from transfers) from transfers "
            f"where record_seq = {_seq('2-2')} and kind = 'credit'",
            f"update balances set balance_g = balance_g + 20000 where account_id = {ISSUANCE}",
            "update balances set balance_g = balance_g - 20000 "
            f"where account_id = {_citizen('2-2')}",
            *_moved(_citizen("19-1"), _citizen("2-2"), 20_000),
        ),
        (_seq("2-2"),),
    ),
    # Grams taken out of a batch's units account: its units are no longer backed.
    "units_account_drained": Forgery(
        "units_not_backed",
        _moved(UNITS, CITIZEN, 1_000),
        ("1",),
    ),
    # A unit issued out of nothing: a seventh number, a block and its issue, no grams.
    "unit_issued_without_grams": Forgery(
        "units_not_backed",
        (
            "update unit_batches set units = units + 1, last_serial = last_serial + 1 where id = 1",
            "insert into unit_blocks (batch_id, first, last, holder) values (1, 7, 7, 'exchange')",
            _move("issue", ("null", "null"), ("'exchange'", "null"), 7, 7),
        ),
        ("1",),
    ),
    # A block issued again over Beta's unit: two holders of one number.
    "block_overlapping_another": Forgery(
        "serials_not_partitioned",
        (
            "insert into unit_blocks (batch_id, first, last, holder) values (1, 1, 1, 'exchange')",
            _move("issue", ("null", "null"), ("'exchange'", "null"), 1, 1),
        ),
        ("1",),
    ),
    # The cancelled unit renumbered past the batch's end, leaving a gap at 6.
    "block_moved_out_of_its_batch": Forgery(
        "serials_not_partitioned",
        ("update unit_blocks set first = 7, last = 7 where holder = 'cancelled'",),
        ("1",),
    ),
    # The exchange's block shrunk: unit 5 is nobody's (and the exchange holds one unit fewer
    # than its moves left it).
    "block_shrunk_leaving_a_gap": Forgery(
        "serials_not_partitioned",
        ("update unit_blocks set last = 4 where holder = 'exchange'",),
        ("1",),
        also=frozenset({"holdings_mismatch"}),
    ),
    # Acme's unit handed to Beta without a move.
    "holder_changed_without_a_move": Forgery(
        "holdings_mismatch",
        (
            f"update unit_blocks set company_id = {BETA_ID} where holder = 'company' "
            f"and company_id = {ACME_ID}",
        ),
        (
            f"(select '1:company:' || cast({ACME_ID} as varchar(20)))",
            f"(select '1:company:' || cast({BETA_ID} as varchar(20)))",
        ),
    ),
    # Acme's retired unit moved to Beta, block and move both: a retired unit never moves.
    "retired_unit_moved": Forgery(
        "unit_move_invalid",
        (
            f"update unit_blocks set holder = 'company', company_id = {BETA_ID}, "
            "retirement_id = null where holder = 'retired'",
            _move("transfer", ("'retired'", ACME_ID), ("'company'", BETA_ID), 2, 2),
        ),
        (
            "(select cast(max(id) as varchar(20)) from unit_moves)",
            "(select 'retirement:' || cast(min(id) as varchar(20)) from unit_retirements)",
        ),
    ),
    # A sale whose trade says more units than were moved.
    "trade_larger_than_its_moves": Forgery(
        "unit_move_invalid",
        ("update unit_trades set units = units + 1",),
        ("(select 'trade:' || cast(min(operation_id) as varchar(20)) from unit_trades)",),
    ),
    # The published root replaced.
    "root_replaced": Forgery(
        "batch_root_mismatch",
        (f"update unit_batches set root = '{'ab' * 32}' where id = 1",),
        ("1",),
    ),
    # A stored root of a run of leaves replaced: proofs built from it would not verify.
    "run_root_replaced": Forgery(
        "batch_root_mismatch",
        (f"update batch_nodes set hash = '{'cd' * 32}' where batch_id = 1 and chunk = 0",),
        ("1",),
    ),
    # A leaf's receipt renamed: the record id the root committed to is not the one stored.
    "leaf_record_id_changed": Forgery(
        "batch_root_mismatch",
        ("update records set record_id = '5-3x' where record_id = '5-3'",),
        ("1",),
    ),
    # Grams moved between two leaves of the batch: every sum agrees, the root does not.
    "leaf_grams_moved": Forgery(
        "batch_root_mismatch",
        (
            "update batch_credits set grams = grams + 1 where batch_id = 1 "
            "and position = (select max(position) from batch_credits where batch_id = 1)",
            "update batch_credits set grams = grams - 1 where batch_id = 1 and position = 5",
        ),
        ("1",),
    ),
}


def test_every_market_check_has_a_forgery() -> None:
    assert {f.check for f in FORGERIES.values()} == MARKET_CHECKS
    assert set(ledger.CHECKS) >= MARKET_CHECKS


@pytest.mark.parametrize("name", list(FORGERIES))
def test_verify_names_the_forgery_each_market_check_guards(app: App, name: str) -> None:
    forgery = FORGERIES[name]
    forge(app.engine, *forgery.statements)
    names = tuple(n if not n.startswith("(") else _one(app, n) for n in forgery.names)
    found = {v.check: v for v in ledger.verify(app)}
    assert forgery.check in found, sorted(found)
    assert set(found) - forgery.also == {forgery.check}, sorted(found)
    assert sorted(found[forgery.check].examples) == sorted(names)


def test_moves_of_units_are_never_changed_or_deleted(app: App) -> None:
    """The application cannot edit a move of units: a correction is another move."""
    for statement in (
        "update unit_moves set to_company = null",
        "delete from unit_moves",
    ):
        with pytest.raises(exc.DBAPIError, match="append-only"), app.engine.begin() as conn:
            conn.execute(text(statement))
    assert ledger.verify(app) == []


def test_a_forgery_needs_its_triggers_out_of_the_way_and_they_come_back(app: App) -> None:
    """Forging a move (as the database's owner can) is caught, and the trigger refuses the
    application again afterwards."""
    forge(app.engine, "update unit_moves set to_holder = 'buffer' where kind = 'cancel'")
    found = {v.check for v in ledger.verify(app)}
    assert found == {"holdings_mismatch", "unit_move_invalid"}
    with pytest.raises(exc.DBAPIError, match="append-only"), app.engine.begin() as conn:
        conn.execute(text("delete from unit_moves where kind = 'cancel'"))
