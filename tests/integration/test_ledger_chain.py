"""The ledger proves itself: append-only rows in the database, commits sealed into a hash chain,
signed checkpoints, and the checks of `ledger verify` that catch what a forger with the
database's superuser can do (each planted with `tests.forging.forge`)."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from puhui.adapters.sql.chain import digests_of
from puhui.adapters.sql.ledger import post
from puhui.bootstrap import App
from puhui.domain import chain as rules
from puhui.domain.errors import RefusedError
from puhui.entrypoints.cli import app as cli
from puhui.service import admin, ingest, ledger, queries, submissions, wallet
from tests.builders import event, write_jsonl
from tests.conftest import NOW
from tests.forging import forge

ALICE, BOB = "13800138000", "13900139000"
CHAIN_CHECKS = {"transfer_uncommitted", "commit_altered", "chain_broken", "checkpoint_invalid"}


@pytest.fixture
def ledger_app(app: App) -> App:
    """A ledger with credits (one chunk of two), a redemption, a retirement and a gift, each
    its own commit, all sealed."""
    admin.add_platform(app, "amap")
    ingest.ingest_records(
        app, "amap", [event("e1", subject=ALICE, quantity="10"), event("e2", subject=BOB)]
    )
    wallet.add_reward(app, "tree", "A tree", "tree", "SEE", price_g=100, stock=10)
    alice = queries.pseudonym_of(app, ALICE)
    wallet.redeem(app, alice, "tree", "r1", "test")
    wallet.retire(app, alice, 50, "t1", "test")
    wallet.transfer(app, alice, queries.pseudonym_of(app, BOB), 10, "g1", "test")
    ledger.seal(app)
    return app


def found(app: App, checkpoints: list[str] | None = None) -> set[str]:
    return {v.check for v in ledger.verify(app, checkpoints)}


def scalar(app: App, sql: str) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_every_transaction_that_writes_transfers_is_one_sealed_commit(ledger_app: App) -> None:
    """A chunk's two credits share one commit; each operation is a commit of its own; all are
    sealed once, in order, and the ledger verifies clean."""
    app = ledger_app
    with app.engine.connect() as conn:
        per_commit = conn.execute(
            text("select commit_id, count(*) from transfers group by commit_id order by 1")
        ).all()
        chain = conn.execute(
            text("select position, commit_id from ledger_chain order by position")
        ).all()
    assert [n for _, n in per_commit] == [2, 1, 1, 1]
    assert [c for _, c in chain] == [c for c, _ in per_commit]
    assert [p for p, _ in chain] == [1, 2, 3, 4]
    assert ledger.unsealed(app) == 0
    assert ledger.seal(app) == 0
    assert ledger.verify(app) == []


def test_verify_reports_unsealed_commits_and_never_seals_them(ledger_app: App) -> None:
    app = ledger_app
    wallet.retire(app, queries.pseudonym_of(app, ALICE), 5, "t2", "test")
    assert ledger.verify(app) == []
    assert ledger.unsealed(app) == 1
    assert ledger.seal(app) == 1
    assert ledger.unsealed(app) == 0


@pytest.mark.parametrize(
    "table", ["transfers", "ledger_commits", "ledger_chain", "ledger_checkpoints"]
)
@pytest.mark.parametrize(
    "change", ["update {table} set {column} = {column}", "delete from {table}"]
)
def test_the_database_refuses_to_change_a_ledger_row(
    ledger_app: App, table: str, change: str
) -> None:
    """UPDATE and DELETE of transfers, commits, the chain and checkpoints are refused by the
    database itself, whoever sends them; a forger must first put the triggers aside."""
    app = ledger_app
    ledger.checkpoint(app)
    ledger.checkpoint(app)
    column = {"ledger_chain": "position"}.get(table, "id")
    refused = pytest.raises(DBAPIError, match="append-only: correct with a reversing transfer")
    with refused, app.engine.begin() as conn:
        conn.execute(text(change.format(table=table, column=column)))
    before = scalar(app, f"select count(*) from {table}")
    forge(app.engine, f"delete from {table} where {column} = (select max({column}) from {table})")
    assert scalar(app, f"select count(*) from {table}") == before - 1
    # The triggers are back.
    with pytest.raises(DBAPIError, match="append-only"), app.engine.begin() as conn:
        conn.execute(text(f"delete from {table}"))


def test_a_consistent_inflation_of_a_credit_is_caught_by_the_chain_alone(app: App) -> None:
    """A credit inflated by 1 000 g in its transfer, both balances, its record and every tally
    counting it passes every other check; its commit's digest no longer holds."""
    admin.add_platform(app, "amap")
    _, receipts = ingest.ingest_records(app, "amap", [event("e1")])
    grams = int(receipts.column("reduction_g")[0].as_py())
    assert grams > 0
    ledger.seal(app)
    forge(
        app.engine,
        "update transfers set amount = amount + 1000 where kind = 'credit'",
        "update balances set balance_g = balance_g + 1000 where account_id = "
        "(select credit_account_id from transfers where kind = 'credit')",
        "update balances set balance_g = balance_g - 1000 where account_id = "
        "(select debit_account_id from transfers where kind = 'credit')",
        "update records set reduction_g = reduction_g + 1000 where status = 'credited'",
        "update tallies set grams = grams + 1000 where status = 'credited' and grams > 0",
    )
    assert scalar(app, "select amount from transfers") == grams + 1000
    checks = found(app)
    assert checks & CHAIN_CHECKS == {"commit_altered"}
    assert not checks & {"balance_mismatch", "ledger_total", "credit_amount_mismatch"}
    assert not checks & {"tally_mismatch", "transfer_not_positive"}


@pytest.mark.parametrize(
    "forgery",
    [
        # An edited time.
        "update transfers set created_at = created_at - interval '1 day' where id = 1",
        # A deleted transfer.
        "delete from transfers where id = (select max(id) from transfers)",
        # A transfer inserted into a sealed commit.
        "insert into transfers (kind, debit_account_id, credit_account_id, amount, created_at, "
        "commit_id) select 'transfer', debit_account_id, credit_account_id, 1, created_at, "
        "commit_id from transfers where id = 1",
        # A transfer moved to another commit.
        "update transfers set commit_id = (select max(commit_id) from transfers) where id = 1",
    ],
    ids=["edited-time", "deleted", "inserted", "moved"],
)
def test_a_sealed_commit_whose_transfers_changed_is_named(ledger_app: App, forgery: str) -> None:
    app = ledger_app
    if app.engine.dialect.name == "sqlite":
        forgery = forgery.replace("created_at - interval '1 day'", "datetime(created_at, '-1 day')")
    forge(app.engine, forgery)
    assert found(app) & CHAIN_CHECKS == {"commit_altered"}
    altered = {v.check: v.examples for v in ledger.verify(app)}["commit_altered"]
    assert altered  # names the commits, by id
    assert all(scalar(app, f"select count(*) from ledger_commits where id = {c}") for c in altered)


def test_a_transfer_without_a_known_commit_is_named(ledger_app: App) -> None:
    app = ledger_app
    forge(
        app.engine,
        "insert into transfers (kind, debit_account_id, credit_account_id, amount, created_at) "
        "select 'transfer', credit_account_id, debit_account_id, 1, created_at "
        "from transfers where id = 1",
        "insert into transfers (kind, debit_account_id, credit_account_id, amount, created_at, "
        "commit_id) select 'transfer', debit_account_id, credit_account_id, 1, created_at, "
        "987654 from transfers where id = 1",
    )
    violations = {v.check: v for v in ledger.verify(app)}
    assert set(violations) & CHAIN_CHECKS == {"transfer_uncommitted"}
    assert violations["transfer_uncommitted"].count == 2


def test_two_chain_positions_swapped_break_the_chain(ledger_app: App) -> None:
    app = ledger_app
    forge(
        app.engine,
        "update ledger_chain set position = -1 where position = 2",
        "update ledger_chain set position = 2 where position = 3",
        "update ledger_chain set position = 3 where position = -1",
    )
    violations = {v.check: v for v in ledger.verify(app)}
    assert set(violations) & CHAIN_CHECKS == {"chain_broken"}
    assert violations["chain_broken"].examples == ("2", "3", "4")


def test_an_edited_chain_value_breaks_its_position_and_the_next(ledger_app: App) -> None:
    app = ledger_app
    forge(app.engine, f"update ledger_chain set chain = '{'0' * 64}' where position = 2")
    violations = {v.check: v for v in ledger.verify(app)}
    assert set(violations) & CHAIN_CHECKS == {"chain_broken"}
    assert violations["chain_broken"].examples == ("2", "3")


@pytest.mark.parametrize(
    "forgery",
    [
        "update ledger_checkpoints set signature = '{flipped}'",
        "update ledger_checkpoints set chain = '{zeros}'",
        "update ledger_checkpoints set position = position - 1",
        "update ledger_checkpoints set key_version = 7",
    ],
    ids=["signature", "chain", "position", "key-version"],
)
def test_an_altered_checkpoint_is_named(ledger_app: App, forgery: str) -> None:
    app = ledger_app
    signed = ledger.checkpoint(app)
    assert found(app) & CHAIN_CHECKS == set()
    flipped = ("0" if signed.signature[0] != "0" else "1") + signed.signature[1:]
    forge(app.engine, forgery.format(flipped=flipped, zeros="0" * 64))
    violations = {v.check: v for v in ledger.verify(app)}
    assert set(violations) & CHAIN_CHECKS == {"checkpoint_invalid"}
    assert violations["checkpoint_invalid"].examples == ("1",)


def _rechain(app: App) -> list[str]:
    """What a forger who rewrites the chain after editing a transfer runs: every digest and
    chain value recomputed from the stored transfers, and the stored checkpoints deleted."""
    with app.engine.connect() as conn:
        rows = conn.execute(
            text("select position, commit_id from ledger_chain order by position")
        ).all()
    with app.engine.connect() as conn:
        digests = digests_of(conn, [int(c) for _, c in rows])
    statements, previous = [], rules.GENESIS
    for position, commit in rows:
        digest = digests.get(int(commit), rules.commit_digest(()))
        previous = rules.link(previous, int(position), int(commit), digest)
        statements.append(
            f"update ledger_chain set digest = '{digest.hex()}', chain = '{previous.hex()}' "
            f"where position = {int(position)}"
        )
    return [*statements, "delete from ledger_checkpoints"]


def test_the_auditors_checkpoint_file_catches_a_rewritten_chain(
    ledger_app: App, tmp_path: Path
) -> None:
    """Inflate a credit, rewrite every digest and chain value after it and delete the stored
    checkpoints: the database agrees with itself, and only the auditor's file, kept outside
    it, tells."""
    app = ledger_app
    kept = tmp_path / "checkpoints.jsonl"
    kept.write_text(ledger.checkpoint(app).json_line() + "\n")
    lines = kept.read_text().splitlines()
    assert ledger.verify(app, lines) == []

    forge(app.engine, "update transfers set amount = amount + 1000 where id = 1")
    forge(app.engine, *_rechain(app))
    assert found(app) & CHAIN_CHECKS == set()
    violations = {v.check: v for v in ledger.verify(app, lines)}
    assert set(violations) & (CHAIN_CHECKS | {"checkpoint_file_mismatch"}) == {
        "checkpoint_file_mismatch"
    }
    assert violations["checkpoint_file_mismatch"].examples == ("line 1",)


def test_an_altered_line_of_the_auditors_file_is_named(ledger_app: App) -> None:
    app = ledger_app
    first = ledger.checkpoint(app).json_line()
    wallet.retire(app, queries.pseudonym_of(app, ALICE), 5, "t2", "test")
    second = json.loads(ledger.checkpoint(app).json_line())
    assert second["position"] == 5
    forged = dict(second, position=4)
    assert ledger.verify(app, [first, json.dumps(second)]) == []
    violations = {v.check: v for v in ledger.verify(app, [first, json.dumps(forged), "{}", ""])}
    assert violations["checkpoint_file_mismatch"].examples == ("line 2", "line 3")


def test_the_cli_seals_signs_prints_the_keys_and_verifies_the_file(
    ledger_app: App, tmp_path: Path
) -> None:
    app = ledger_app
    wallet.retire(app, queries.pseudonym_of(app, ALICE), 5, "t2", "test")
    where = ["--db", app.engine.url.render_as_string(hide_password=False)]
    where += ["--key-file", str(app.settings.key_file)]
    runner = CliRunner()
    sealed = runner.invoke(cli, ["ledger", "seal", *where])
    assert sealed.exit_code == 0, sealed.output
    assert "1 commits sealed; chain at position 5" in sealed.output
    kept = tmp_path / "auditor" / "checkpoints.jsonl"
    kept.parent.mkdir()
    for _ in range(2):
        signed = runner.invoke(cli, ["ledger", "checkpoint", "--out", str(kept), *where])
        assert signed.exit_code == 0, signed.output
    lines = kept.read_text().splitlines()
    assert [json.loads(line)["position"] for line in lines] == [5, 5]
    keys = runner.invoke(cli, ["ledger", "public-key", *where])
    assert keys.output.split() == ["0", json.loads(lines[0])["public_key"]]
    pem = runner.invoke(cli, ["ledger", "public-key", "--pem", *where])
    assert "-----BEGIN PUBLIC KEY-----" in pem.output
    verified = runner.invoke(cli, ["ledger", "verify", "--checkpoints", str(kept), *where])
    assert verified.exit_code == 0, verified.output
    assert "0 commits not sealed yet" in verified.output
    forge(app.engine, "update ledger_chain set chain = '" + "1" * 64 + "' where position = 5")
    broken = runner.invoke(cli, ["ledger", "verify", "--checkpoints", str(kept), *where])
    assert broken.exit_code == 1
    for check in ("chain_broken", "checkpoint_invalid", "checkpoint_file_mismatch"):
        assert check in broken.output


def test_sealing_during_concurrent_redemptions_seals_every_commit_once(app: App) -> None:
    """Eight clients redeem while a sealer runs over and over: every commit is sealed exactly
    once, in a chain that recomputes, and the ledger verifies clean."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers: PostgreSQL")
    admin.add_platform(app, "amap")
    citizens = [f"1380000{i:04d}" for i in range(16)]
    ingest.ingest_records(
        app, "amap", [event(f"e{i}", subject=s, quantity="10") for i, s in enumerate(citizens)]
    )
    wallet.add_reward(app, "tree", "A tree", "tree", "SEE", price_g=100, stock=None)
    pseudonyms = [queries.pseudonym_of(app, s) for s in citizens]
    done = threading.Event()
    sealed: list[int] = []

    def sealer() -> None:
        while not done.is_set():
            sealed.append(ledger.seal(app))

    def attempt(i: int) -> bool:
        try:
            wallet.redeem(app, pseudonyms[i % len(pseudonyms)], "tree", f"k{i}", "test")
        except RefusedError:
            return False
        return True

    sealing = [threading.Thread(target=sealer) for _ in range(2)]
    for thread in sealing:
        thread.start()
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            redeemed = sum(pool.map(attempt, range(200)))
    finally:
        done.set()
        for thread in sealing:
            thread.join()
    sealed.append(ledger.seal(app))
    assert redeemed > 100
    commits = scalar(app, "select count(*) from ledger_commits")
    assert commits == redeemed + 1  # and the credits' chunk
    assert sum(sealed) == commits
    assert scalar(app, "select count(distinct commit_id) from ledger_chain") == commits
    assert scalar(app, "select max(position) from ledger_chain") == commits
    assert ledger.unsealed(app) == 0
    assert ledger.verify(app) == []


def test_a_quick_seal_seals_the_recent_commits(ledger_app: App) -> None:
    app = ledger_app
    alice = queries.pseudonym_of(app, ALICE)
    for key in ("t2", "t3"):
        wallet.retire(app, alice, 5, key, "test")
    assert ledger.seal(app, everything=False) == 2
    assert ledger.unsealed(app) == 0
    assert ledger.verify(app) == []


def test_a_commit_still_open_while_later_ones_are_sealed_is_sealed_after_them(
    ledger_app: App,
) -> None:
    """A writer that drew its commit id before another writer committed is sealed by the run
    after it commits, at a later position than the commit with the larger id."""
    app = ledger_app
    if app.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    with app.engine.connect() as conn:
        # The tree's part and its issuer: accounts the retirement below does not lock.
        reward, issuance = (
            int(conn.execute(text(sql)).scalar_one())
            for sql in (
                "select account_id from reward_stock where taken > 0",
                "select id from accounts where kind = 'issuance'",
            )
        )
    slow = app.engine.connect()
    slow.begin()
    post(slow, "transfer", [(issuance, -1, False), (reward, 1, False)], NOW)
    open_commit = scalar(app, "select max(id) from ledger_commits") + 1  # not visible yet
    wallet.retire(app, queries.pseudonym_of(app, ALICE), 5, "t2", "test")
    assert ledger.seal(app, everything=False) == 1
    slow.commit()
    slow.close()
    assert ledger.seal(app, everything=False) == 1
    with app.engine.connect() as conn:
        last_two = [
            int(c)
            for c in conn.execute(
                text("select commit_id from ledger_chain order by position desc limit 2")
            ).scalars()
        ]
    # The open one, sealed last, has the smaller id.
    assert last_two == [open_commit, open_commit + 1]
    assert ledger.verify(app) == []


def test_an_ingested_file_and_an_api_group_are_sealed_once_they_commit(
    app: App, tmp_path: Path
) -> None:
    admin.add_platform(app, "amap")
    path = write_jsonl(tmp_path / "amap.jsonl", [event("e1"), event("e2", subject=BOB)])
    ingest.ingest_files(app, "amap", [path])
    assert scalar(app, "select count(*) from ledger_commits") == 1
    assert ledger.unsealed(app) == 0
    group = submissions.GroupCommit(app)
    try:
        group.submit("amap", [event("e3", subject=BOB, quantity="7")])
    finally:
        group.close()  # the group's seal runs after it is answered
    assert scalar(app, "select count(*) from ledger_chain") == 2
    assert ledger.unsealed(app) == 0


def test_a_running_server_keeps_the_ledger_sealed_and_checkpointed(ledger_app: App) -> None:
    app = ledger_app
    wallet.retire(app, queries.pseudonym_of(app, ALICE), 5, "t2", "test")
    keeper = ledger.Keeper(app, seal_every=0.05, full_every=0.1, checkpoint_every=0.2)
    keeper.start()
    try:
        deadline = time.monotonic() + 30
        while (
            ledger.unsealed(app) or not scalar(app, "select count(*) from ledger_checkpoints")
        ) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        keeper.stop()
    assert ledger.unsealed(app) == 0
    assert scalar(app, "select count(*) from ledger_checkpoints") >= 1
    assert ledger.verify(app) == []
