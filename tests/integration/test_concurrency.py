"""Several submissions at once, as a multi-worker server makes them, on both databases."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from puhui.bootstrap import App
from puhui.service import admin, ingest, ledger, submissions
from tests.builders import event, trip

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
    release = threading.Event()
    groups: list[list[str]] = []
    settle_records = submissions.ingest_records

    def held(*args: Any, **kwargs: Any) -> Any:
        groups.append([r["record_id"] for r in args[2]])
        if len(groups) == 1:
            release.wait(timeout=30)
        return settle_records(*args, **kwargs)

    monkeypatch.setattr(submissions, "ingest_records", held)
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
    statuses = [
        [(row["record_id"], row["status"], row["reason"]) for row in r.receipts.to_pylist()]
        for r in results
    ]
    assert statuses == [
        [("a1", "credited", "")],
        [("a2", "duplicate", "duplicate_overlap"), ("a3", "credited", "")],
        [("d1", "duplicate", "duplicate_overlap")],
        [("a1", "credited", ""), ("a4", "credited", "")],
    ]
    # The re-sent a1 is answered with the first receipt and credits nothing again.
    credit = results[0].receipts.column("reduction_g")[0].as_py()
    assert credit > 0
    assert results[0].credited_g == credit
    assert results[3].credited_g == results[3].receipts.column("reduction_g")[1].as_py()
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
    assert again.receipts.column("status").to_pylist() == ["credited"]
    with pytest.raises(RuntimeError, match="closed"):
        loop.submit("amap", [event("e2")])


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)
