"""A v1 database (ledger of entries and postings, the demo data and citizens' operations)
upgraded to the latest schema keeps every receipt, balance, operation and certificate, and its
ledger verifies.

The fixture is described in tests/fixtures/README.md. On PostgreSQL it is first copied into a
database built by the migrations up to the fixture's revision, as a v1 installation would be.
"""

from __future__ import annotations

import gzip
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from sqlalchemy import MetaData, create_engine, insert, select, text

from puhui.adapters.sql import migrate
from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.errors import RefusedError
from puhui.service import admin, ledger, queries, wallet
from tests.conftest import NOW
from tests.pgcluster import PgCluster

FIXTURES = Path(__file__).parent.parent / "fixtures"
V1_REVISION = "0005"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def v1_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The v1 demo database, on SQLite or copied into PostgreSQL at the same revision."""
    sqlite = tmp_path / "v1.db"
    with gzip.open(FIXTURES / "v1-demo.sqlite.gz") as source, sqlite.open("wb") as target:
        shutil.copyfileobj(source, target)
    if request.param == "sqlite":
        return f"sqlite:///{sqlite}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    url = cluster.create_database("v_" + uuid.uuid4().hex[:16])
    _copy_to_postgres(f"sqlite:///{sqlite}", url)
    return url


def _copy_to_postgres(sqlite_url: str, pg_url: str) -> None:
    """Build a PostgreSQL database at the v1 revision and copy every row of the v1 one."""
    target = create_engine(pg_url)
    config = migrate.alembic_config(target)
    with target.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, V1_REVISION)
    source = create_engine(sqlite_url)
    tables = MetaData()
    tables.reflect(source)
    with source.connect() as read, target.begin() as write:
        for table in tables.sorted_tables:
            if table.name == "alembic_version":
                continue
            rows = [dict(r._mapping) for r in read.execute(select(table))]
            if rows:
                write.execute(insert(table), rows)
            for column in table.primary_key.columns:
                sequence = write.execute(
                    text("select pg_get_serial_sequence(:t, :c)"),
                    {"t": table.name, "c": column.name},
                ).scalar_one()
                if sequence is not None:
                    write.execute(
                        text(
                            f"select setval('{sequence}', coalesce(max({column.name}), 0) + 1, "
                            f"false) from {table.name}"
                        )
                    )
    source.dispose()
    target.dispose()


def _receipts(conn: Any) -> list[tuple[Any, ...]]:
    return [
        tuple(r)
        for r in conn.execute(
            text(
                "select p.code, r.record_id, r.status, r.reason, r.reduction_g, r.methodology, "
                "r.detail, f.record_id from records r join platforms p on p.id = r.platform_id "
                "left join records f on f.seq = r.duplicate_of order by r.seq"
            )
        )
    ]


def _balances(conn: Any) -> dict[tuple[Any, ...], int]:
    """Every account's balance, by what the account is (not by its id)."""
    return {
        (kind, pseudonym, platform, methodology, code, unit): int(balance)
        for kind, pseudonym, platform, methodology, code, unit, balance in conn.execute(
            text(
                "select a.kind, s.pseudonym, p.code, a.methodology, a.code, a.unit, "
                "coalesce(b.balance_g, 0) from accounts a "
                "left join subjects s on s.id = a.subject_id "
                "left join platforms p on p.id = a.platform_id "
                "left join balances b on b.account_id = a.id"
            )
        )
    }


@pytest.fixture
def before(v1_url: str) -> dict[str, Any]:
    engine = create_engine(v1_url)
    with engine.connect() as conn:
        state = {
            "receipts": _receipts(conn),
            "balances": _balances(conn),
            "operations": [
                tuple(r)
                for r in conn.execute(
                    text("select id, subject_id, kind, result from operations order by id")
                )
            ],
            "issued": conn.execute(
                text(
                    "select sum(p.amount_g) from postings p join entries e on e.id = p.entry_id "
                    "where e.kind = 'credit' and p.amount_g > 0"
                )
            ).scalar_one(),
            "pseudonyms": [
                p for (p,) in conn.execute(text("select pseudonym from subjects order by id"))
            ],
        }
    engine.dispose()
    return state


@pytest.fixture
def migrated(v1_url: str, before: dict[str, Any], tmp_path: Path) -> Iterator[App]:
    key = tmp_path / "v1.key"
    shutil.copy(FIXTURES / "v1-demo.key", key)
    key.chmod(0o600)  # a checkout leaves it readable by others, which puhui refuses
    app = bootstrap(Settings(v1_url, key), clock=lambda: NOW)
    assert migrate.current_revision(app.engine) == V1_REVISION
    admin.init(app)
    assert migrate.current_revision(app.engine) == migrate.head_revision()
    yield app
    app.close()


def test_a_v1_database_keeps_every_receipt_and_balance(
    migrated: App, before: dict[str, Any]
) -> None:
    with migrated.engine.connect() as conn:
        assert _receipts(conn) == before["receipts"]
        after = _balances(conn)
    # Every account keeps its balance; the parts of each reward's stock (migration 0009) got
    # accounts of their own, empty.
    assert {k: after[k] for k in before["balances"]} == before["balances"]
    opened = {k: v for k, v in after.items() if k not in before["balances"]}
    assert opened
    assert {(k[0], k[4].split("#")[0], v) for k, v in opened.items()} <= {
        ("reward", f"reward:{code}", 0) for code in ("saxaul-alxa", "metro-5", "river-clean")
    }
    assert len(before["receipts"]) == 2952
    # Receipts as platforms read them.
    stored = {
        (p, r["record_id"]): (r["status"], r["reason"], r["reduction_g"])
        for p in {r[0] for r in before["receipts"]}
        for r in queries.receipts(migrated, p)
    }
    assert stored == {(r[0], r[1]): (r[2], r[3], r[4]) for r in before["receipts"]}


def test_a_v1_database_verifies_and_keeps_operations_and_certificates(
    migrated: App, before: dict[str, Any]
) -> None:
    assert ledger.verify(migrated) == []
    totals = ledger.totals(migrated)
    assert totals.issued_g == before["issued"]
    with migrated.engine.connect() as conn:
        operations = [
            tuple(r)
            for r in conn.execute(
                text("select id, subject_id, kind, result from operations order by id")
            )
        ]
    assert operations == before["operations"]
    certificates = [o for o in wallet_results(before) if "certificate" in o]
    assert len(certificates) == 2  # the retirement and the tree
    for result in certificates:
        assert wallet.verify_certificate(migrated, result["certificate"]).result == result
    # The ids that results named still name the same movements: the refunded donation is
    # refunded already, and the gift of grams can be reversed, once.
    results = wallet_results(before)
    refund = next(o for o in results if o.get("reason") == "donation refunded")
    with pytest.raises(RefusedError) as twice:
        wallet.reverse(migrated, refund["reversed"], "again", "staff:ops", "refund again")
    assert twice.value.code == "already_reversed"
    gift = next(o for o in results if o.get("unit") == "g" and "amount" in o)
    undone = wallet.reverse(migrated, gift["entry"], "undo-gift", "staff:ops", "sent by mistake")
    assert undone.result["reversed"] == gift["entry"]
    assert ledger.verify(migrated) == []


def wallet_results(before: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(result) for _, _, _, result in before["operations"]]


def test_a_v1_ledger_becomes_one_genesis_commit_that_seals_and_verifies(migrated: App) -> None:
    """Migration 0010 names one genesis commit in every transfer written before it; sealed,
    the chain starts with it, and a later operation is a commit of its own after it."""
    with migrated.engine.connect() as conn:
        commits = conn.execute(
            text("select commit_id, count(*) from transfers group by commit_id")
        ).all()
        transfers = conn.execute(text("select count(*) from transfers")).scalar_one()
    assert len(commits) == 1
    assert commits[0][1] == transfers > 0
    assert ledger.unsealed(migrated) == 1
    assert ledger.seal(migrated) == 1
    gift = next(o for o in migrated_results(migrated) if o.get("unit") == "g" and "amount" in o)
    wallet.reverse(migrated, gift["entry"], "undo-gift", "staff:ops", "sent by mistake")
    assert ledger.seal(migrated) == 1
    with migrated.engine.connect() as conn:
        sealed = conn.execute(
            text("select position, commit_id from ledger_chain order by position")
        ).all()
    assert [p for p, _ in sealed] == [1, 2]
    assert sealed[0][1] == commits[0][0]
    assert ledger.verify(migrated) == []


def migrated_results(app: App) -> list[dict[str, Any]]:
    with app.engine.connect() as conn:
        return [
            json.loads(r)
            for (r,) in conn.execute(text("select result from operations order by id"))
        ]
