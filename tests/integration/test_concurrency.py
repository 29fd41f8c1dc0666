"""Several submissions at once, as a multi-worker server makes them, on both databases."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from puhui.bootstrap import App
from puhui.service import admin, ingest, ledger
from tests.builders import event


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
