"""Several submissions at once, as a multi-worker server makes them, on both databases."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from unittest.mock import ANY

import pytest
from sqlalchemy import text

from puhui.adapters.sql.unit_of_work import SqlIntakeUnitOfWork
from puhui.bootstrap import App
from puhui.domain.errors import AuthenticationError, RefusedError
from puhui.service import admin, credentials, ingest, ledger, queries, submissions, wallet
from tests.builders import event, trip
from tests.conftest import NOW

SUBJECT = "13800138000"


def test_concurrent_first_submissions_each_get_their_receipts(app: App) -> None:
    """Eight submissions racing on an empty database (the counters do not exist yet) all
    settle, with distinct receive numbers, and the ledger stays sound."""
    admin.add_platform(app, "amap")

    def submit(i: int) -> list[str]:
        record = event(f"e{i}", subject=f"1390013{i:04d}", ref=f"R-{i}")
        _, receipts = ingest.ingest_records(app, "amap", [record])
        return [str(s) for s in receipts.column("status").to_pylist()]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(submit, range(8)))
    assert results == [["credited"]] * 8
    assert ledger.verify(app) == []


def test_submissions_waiting_together_settle_as_one_group(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one group settles, the submissions that arrive queue up; they then settle as one
    batch, in arrival order, and each gets exactly its own receipts."""
    admin.add_platform(app, "amap")
    admin.add_platform(app, "didi")
    release, groups = _hold_group(monkeypatch, 1)
    loop = submissions.GroupCommit(app)
    ride = {"start": "2026-05-01T08:00:00+08:00", "end": "2026-05-01T08:30:00+08:00"}
    waiting = [
        ("amap", [trip("a1", subject=SUBJECT, **ride)]),
        ("amap", [trip("a2", subject=SUBJECT, **ride), event("a3", subject="13900000003")]),
        ("didi", [trip("d1", platform="didi", subject=SUBJECT, **ride)]),
        ("amap", [trip("a1", subject=SUBJECT, **ride), event("a4", subject="13900000004")]),
    ]
    with ThreadPoolExecutor(max_workers=5) as pool:
        first = pool.submit(loop.submit, "amap", [event("a0", subject="13900000000")])
        _wait_for(lambda: len(groups) == 1)
        answers = []
        for platform, records in waiting:
            queued = loop._waiting.qsize()
            answers.append(pool.submit(loop.submit, platform, records))
            _wait_for(lambda queued=queued: loop._waiting.qsize() == queued + 1)
        release.set()
        results = [a.result(timeout=60) for a in answers]
    loop.close()

    assert first.result().batch not in {r.batch for r in results}
    # The waiting submissions of amap settle together, then didi's.
    assert groups[1:] == [["a1", "a2", "a3", "a1", "a4"], ["d1"]]
    assert results[0].batch == results[1].batch == results[3].batch != results[2].batch
    statuses = [[(row.record_id, row.status, row.reason) for row in r.receipts] for r in results]
    assert statuses == [
        [("a1", "credited", "")],
        [("a2", "duplicate", "duplicate_overlap"), ("a3", "credited", "")],
        [("d1", "duplicate", "duplicate_overlap")],
        [("a1", "credited", ""), ("a4", "credited", "")],
    ]
    # The re-sent a1 is answered with the first receipt and credits nothing again.
    credit = results[0].receipts[0].reduction_g
    assert credit > 0
    assert results[0].credited_g == credit
    assert results[3].credited_g == results[3].receipts[1].reduction_g
    assert ledger.verify(app) == []


def test_a_failed_group_fails_its_submissions_only(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An error settling a group is raised to each of its submissions; the loop goes on."""
    admin.add_platform(app, "amap")
    settle_records = submissions.ingest_records
    calls = 0

    def failing_once(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk full")
        return settle_records(*args, **kwargs)

    monkeypatch.setattr(submissions, "ingest_records", failing_once)
    loop = submissions.GroupCommit(app)
    with pytest.raises(OSError, match="disk full"):
        loop.submit("amap", [event("e1")])
    again = loop.submit("amap", [event("e1")])
    loop.close()
    assert [r.status for r in again.receipts] == ["credited"]
    with pytest.raises(RuntimeError, match="closed"):
        loop.submit("amap", [event("e2")])


def test_a_poisoned_submission_fails_alone_and_its_group_settles(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three good 2 000-record submissions wait with one whose records fail settlement (an
    error no check foresaw): the group stores nothing, then each settles alone in arrival
    order; only the poisoned one fails."""
    admin.add_platform(app, "amap")
    release, groups = _hold_group(monkeypatch, 1)
    holding = submissions.ingest_records
    tried: list[str] = []  # the first record of each group tried

    def poisoned(*args: Any, **kwargs: Any) -> Any:
        tried.append(f"{args[2][0]['record_id']} ×{len(args[2])}")
        if any(r["record_id"] == "poison" for r in args[2]):
            raise ValueError("a record no check foresaw")
        return holding(*args, **kwargs)

    monkeypatch.setattr(submissions, "ingest_records", poisoned)

    def good(n: int) -> list[dict[str, Any]]:
        return [event(f"s{n}-{i}", subject=f"139{n}{i:07d}", ref=f"R{n}-{i}") for i in range(2000)]

    waiting = [good(1), good(2), [*good(3)[:1999], event("poison")], good(4)]
    loop = submissions.GroupCommit(app)
    with ThreadPoolExecutor(max_workers=5) as pool:
        blocker = pool.submit(loop.submit, "amap", [event("e0", subject="13900000000")])
        _wait_for(lambda: len(groups) == 1)
        answers = []
        for records in waiting:
            queued = loop._waiting.qsize()
            answers.append(pool.submit(loop.submit, "amap", records))
            _wait_for(lambda queued=queued: loop._waiting.qsize() == queued + 1)
        release.set()
        blocker.result(timeout=60)
        with pytest.raises(ValueError, match="no check foresaw"):
            answers[2].result(timeout=60)
        settled = [answers[i].result(timeout=60) for i in (0, 1, 3)]
    loop.close()
    # The whole group was tried once (the poisoned submission stops it), then each alone.
    assert tried == ["e0 ×1", "s1-0 ×8000", "s1-0 ×2000", "s2-0 ×2000", "s3-0 ×2000", "s4-0 ×2000"]
    assert all([r.status for r in s.receipts] == ["credited"] * 2000 for s in settled)
    assert len({s.batch for s in settled}) == 3
    stored = {r["record_id"] for r in queries.receipts(app, "amap")}
    assert len(stored) == 6001
    assert not any(r.startswith("s3-") for r in stored)
    assert ledger.verify(app) == []


def test_a_replayed_nonce_in_a_group_is_refused_and_the_others_settle(
    app: App, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nonces of a group's requests are claimed in the group's transaction: a nonce used
    before, or twice in the group, refuses that request alone; nothing of it is stored."""
    admin.add_platform(app, "amap")
    release, groups = _hold_group(monkeypatch, 2)  # the second: the blocker
    at = int(NOW.timestamp() * 1000)

    def signed(nonce: str) -> credentials.Signed:
        return credentials.Signed("amap", "pk_" + "0" * 24, nonce, at)

    loop = submissions.GroupCommit(app)
    assert loop.submit("amap", [event("e0")], signed("n" * 16)).batch
    waiting = [
        ([event("e1")], signed("a" * 16)),
        ([event("e2")], signed("n" * 16)),  # used by the first request
        ([event("e3")], signed("a" * 16)),  # used by the first of this group
        ([event("e4")], signed("b" * 16)),
    ]
    with ThreadPoolExecutor(max_workers=5) as pool:
        blocker = pool.submit(loop.submit, "amap", [event("e9")], signed("c" * 16))
        _wait_for(lambda: len(groups) == 2)
        answers = []
        for records, nonce in waiting:
            queued = loop._waiting.qsize()
            answers.append(pool.submit(loop.submit, "amap", records, nonce))
            _wait_for(lambda queued=queued: loop._waiting.qsize() == queued + 1)
        release.set()
        blocker.result(timeout=60)
        outcomes = []
        for answer in answers:
            try:
                outcomes.append([r.status for r in answer.result(timeout=60).receipts])
            except AuthenticationError as refused:
                outcomes.append(refused.code)
    loop.close()
    assert outcomes == [["credited"], "replayed_nonce", "replayed_nonce", ["credited"]]
    # The group with the replay stored nothing; the others settled again, together.
    assert groups[2:] == [["e1", "e2", "e4"], ["e1", "e4"]]
    stored = {r["record_id"] for r in queries.receipts(app, "amap")}
    assert stored == {"e0", "e9", "e1", "e4"}
    assert ledger.verify(app) == []


def _hold_group(
    monkeypatch: pytest.MonkeyPatch, held: int
) -> tuple[threading.Event, list[list[str]]]:
    """Record the record ids of each group settled, and hold the `held`-th group until the
    event is set."""
    release = threading.Event()
    groups: list[list[str]] = []
    settle_records = submissions.ingest_records

    def holding(*args: Any, **kwargs: Any) -> Any:
        groups.append([r["record_id"] for r in args[2]])
        if len(groups) == held:
            release.wait(timeout=30)
        return settle_records(*args, **kwargs)

    monkeypatch.setattr(submissions, "ingest_records", holding)
    return release, groups


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_concurrent_redemptions_never_oversell_or_overdraw(app: App) -> None:
    """32 clients make 1 000 redemption attempts on a stock of 100: exactly 100 succeed,
    every balance is exact, and re-sent requests (same keys) change nothing."""
    admin.add_platform(app, "amap")
    rich = [f"1380000{i:04d}" for i in range(40)]
    poor = [f"1370000{i:04d}" for i in range(10)]
    _, receipts = ingest.ingest_records(
        app, "amap", [event(f"e{i}", subject=s, quantity="10") for i, s in enumerate(rich)]
    )
    start = dict(zip(rich, receipts.column("reduction_g").to_pylist(), strict=True))
    price = 100
    wallet.add_reward(app, "tree", "A tree", "tree", "SEE", price_g=price, stock=100)
    citizens = rich + poor
    pseudonyms = {s: queries.pseudonym_of(app, s) for s in citizens}

    def attempt(i: int) -> tuple[str, str, int | None]:
        subject = citizens[i % len(citizens)]
        try:
            done = wallet.redeem(app, pseudonyms[subject], "tree", f"k{i}", "test")
        except RefusedError as refused:
            return subject, refused.code, None
        return subject, "done", int(done.result["tree_number"])

    with ThreadPoolExecutor(max_workers=32) as pool:
        results = list(pool.map(attempt, range(1000)))
    done = [r for r in results if r[1] == "done"]
    assert len(done) == 100
    assert sorted(r[2] for r in done) == list(range(1, 101))  # each tree numbered once
    assert {r[1] for r in results} <= {"done", "out_of_stock", "insufficient_balance"}
    assert all(r[1] != "done" for r in results if r[0] in poor)
    won = Counter(r[0] for r in done)
    for subject in rich:
        held = wallet.holdings(app, pseudonyms[subject]).balance_g
        assert held == start[subject] - price * won[subject]
    reward = wallet.get_reward(app, "tree")
    assert reward.remaining == 0

    # The same requests again: the same answers, nothing more spent.
    winners = [i for i, r in enumerate(results) if r[1] == "done"][:50]
    with ThreadPoolExecutor(max_workers=32) as pool:
        again = list(pool.map(attempt, winners))
    assert again == [results[i] for i in winners]
    assert (
        sum(wallet.holdings(app, pseudonyms[s]).balance_g for s in rich)
        == sum(start.values()) - 100 * price
    )
    assert ledger.verify(app) == []


def test_one_new_key_sent_at_once_by_many_clients_is_one_redemption(app: App) -> None:
    """Eight clients send the same request under the same new key at the same moment: one
    redemption is made, paid once, and every client gets its answer."""
    admin.add_platform(app, "amap")
    ingest.ingest_records(app, "amap", [event("e1", subject=SUBJECT, quantity="10")])
    wallet.add_reward(app, "tree", "A tree", "tree", "SEE", price_g=100, stock=50)
    who = queries.pseudonym_of(app, SUBJECT)
    before = wallet.holdings(app, who).balance_g
    start = threading.Barrier(8)

    def attempt(_: int) -> wallet.Outcome:
        start.wait(timeout=30)
        return wallet.redeem(app, who, "tree", "same-key", "test")

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert len({a.operation for a in answers}) == 1
    assert len({a.result["tree_number"] for a in answers}) == 1
    assert sum(not a.replayed for a in answers) == 1
    assert wallet.holdings(app, who).balance_g == before - 100
    assert wallet.get_reward(app, "tree").remaining == 49
    assert ledger.verify(app) == []


def test_a_key_claimed_meanwhile_by_another_request_answers_with_its_result(app: App) -> None:
    """PostgreSQL records an operation last: a request that did its work while another one
    recorded the same key finds the key taken when it records, stores nothing, and answers
    with the other's result."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    admin.add_platform(app, "amap")
    ingest.ingest_records(app, "amap", [event("e1", subject=SUBJECT, quantity="10")])
    wallet.add_reward(app, "tree", "A tree", "tree", "SEE", price_g=100, stock=50)
    who = queries.pseudonym_of(app, SUBJECT)
    before = wallet.holdings(app, who).balance_g
    digest = hashlib.sha256(
        json.dumps({"op": "redeem", "reward": "tree"}, sort_keys=True).encode()
    ).hexdigest()
    other = app.engine.connect()
    transaction = other.begin()
    other.execute(
        text(
            "insert into operations (subject_id, idempotency_key, kind, request_digest, "
            "reward_id, actor, result, created_at) select s.id, 'k', 'redeem', :d, w.id, "
            '\'other\', \'{"reward": "tree", "kind": "tree"}\', now() '
            "from subjects s, rewards w where s.pseudonym = :p and w.code = 'tree'"
        ),
        {"d": digest, "p": who},
    )
    answered: dict[str, Any] = {}

    def redeem() -> None:
        answered["outcome"] = wallet.redeem(app, who, "tree", "k", "test")

    racing = threading.Thread(target=redeem)
    racing.start()
    time.sleep(0.5)  # it did its work and now waits on the key's index entry
    assert racing.is_alive()
    transaction.commit()
    other.close()
    racing.join(timeout=30)
    outcome = answered["outcome"]
    assert outcome.replayed
    # The other's, as stored (a tree's certificate id is derived when it is read).
    assert outcome.result == {"reward": "tree", "kind": "tree", "certificate": ANY}
    assert wallet.holdings(app, who).balance_g == before  # its own work was not kept
    assert wallet.get_reward(app, "tree").remaining == 50


def test_an_entry_reversed_meanwhile_by_another_operator_is_refused_as_reversed(
    app: App,
) -> None:
    """A reversal that waits on an entry another transaction is reversing finds it reversed
    once that commits: refused as such, never a server error."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    admin.add_platform(app, "amap")
    ingest.ingest_records(app, "amap", [event("e1", subject=SUBJECT, quantity="10")])
    giver, taker = queries.pseudonym_of(app, SUBJECT), queries.pseudonym_of(app, "13900139000")
    gift = wallet.transfer(app, giver, taker, 500, "g1", "test")
    entry = gift.result["entry"]
    other = app.engine.connect()
    transaction = other.begin()
    # The other operator's reversal, not committed yet: its commit, the mirror, its balances.
    commit = other.execute(
        text("insert into ledger_commits (at) values (now()) returning id")
    ).scalar_one()
    other.execute(
        text(
            "insert into transfers (kind, debit_account_id, credit_account_id, amount, "
            "reverses, created_at, commit_id) select 'reversal', credit_account_id, "
            "debit_account_id, amount, id, created_at, :c from transfers where id = :e"
        ),
        {"e": entry, "c": commit},
    )
    other.execute(
        text(
            "update balances set balance_g = balance_g + case when account_id = x.debit_account_id "
            "then x.amount else -x.amount end from transfers x where x.id = :e "
            "and balances.account_id in (x.debit_account_id, x.credit_account_id)"
        ),
        {"e": entry},
    )
    answered: dict[str, Any] = {}

    def reverse() -> None:
        try:
            wallet.reverse(app, entry, "mine", "staff:ops", "by mistake")
        except RefusedError as refused:
            answered["code"] = refused.code

    racing = threading.Thread(target=reverse)
    racing.start()
    time.sleep(0.5)  # it waits on the rows the other holds
    assert racing.is_alive()
    transaction.commit()
    other.close()
    racing.join(timeout=30)
    assert answered == {"code": "already_reversed"}
    assert wallet.holdings(app, taker).balance_g == 0
    assert ledger.verify(app) == []


def test_a_citizen_registered_meanwhile_by_another_transaction_keeps_one_id(app: App) -> None:
    """Registering a chunk's citizens is one statement on PostgreSQL; a citizen another
    transaction registers while it waits (committed after its snapshot) is read again, not
    lost and not registered twice."""
    if app.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time")
    other = app.engine.connect()
    transaction = other.begin()
    theirs = other.execute(
        text("insert into subjects (pseudonym) values ('p-raced') returning id")
    ).scalar_one()
    result: dict[str, Any] = {}

    def register() -> None:
        with SqlIntakeUnitOfWork(app.engine) as uow:
            result["ids"] = uow.store.subject_ids(["p-raced", "p-new"]).to_pylist()
            uow.commit()

    waiting = threading.Thread(target=register)
    waiting.start()
    time.sleep(0.5)  # the registration now waits on the other transaction's row
    assert waiting.is_alive()
    transaction.commit()
    other.close()
    waiting.join(timeout=30)
    by_pseudonym = {r["pseudonym"]: r for r in result["ids"]}
    assert set(by_pseudonym) == {"p-raced", "p-new"}
    assert by_pseudonym["p-raced"]["subject_id"] == theirs
    assert by_pseudonym["p-raced"]["registered"] is False
    assert by_pseudonym["p-new"]["registered"] is True
