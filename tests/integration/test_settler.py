"""The settlement process of `puhui serve`, and its client in the workers: receipts, refusals
and failures come back over the socket as they would from the group commit in process."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from puhui.bootstrap import App
from puhui.domain.errors import AuthenticationError, InputError
from puhui.entrypoints import settler
from puhui.service import admin, credentials, ledger, queries, submissions
from tests.builders import event
from tests.conftest import NOW


@pytest.fixture
def remote(app: App, tmp_path: Path) -> Iterator[settler.RemoteSettlement]:
    admin.add_platform(app, "amap")
    address = str(tmp_path / "settle.sock")
    authkey = secrets.token_bytes(32)
    ready = multiprocessing.get_context("spawn").Event()
    threading.Thread(
        target=settler.run,
        args=(app.settings.database_url, str(app.settings.key_file), address, authkey, ready),
        daemon=True,
    ).start()
    assert ready.wait(30)
    client = settler.RemoteSettlement(address, authkey)
    yield client
    asyncio.run(client.aclose())


def _settle(
    client: settler.RemoteSettlement,
    platform: str,
    records: list[object],
    signed: credentials.Signed | None = None,
) -> submissions.Submitted:
    async def settled() -> submissions.Submitted:
        try:
            return await client.settle(platform, records, signed)
        finally:
            await client.aclose()

    return asyncio.run(settled())


def test_receipts_come_back_and_a_replayed_nonce_is_refused(
    app: App, remote: settler.RemoteSettlement
) -> None:
    signed = credentials.Signed("amap", "pk_" + "0" * 24, "n" * 16, int(NOW.timestamp() * 1000))
    first = _settle(remote, "amap", [event("e1"), event("e2", quantity="x")], signed)
    assert [r.status for r in first.receipts] == ["credited", "rejected"]
    assert first.credited_g == first.receipts[0].reduction_g > 0
    with pytest.raises(AuthenticationError) as replay:
        _settle(remote, "amap", [event("e3")], signed)
    assert replay.value.code == "replayed_nonce"
    with pytest.raises(InputError):
        _settle(remote, "amap", [])
    assert {r["record_id"] for r in queries.receipts(app, "amap")} == {"e1", "e2"}
    assert ledger.verify(app) == []


def test_a_failed_group_is_a_settlement_failure(remote: settler.RemoteSettlement) -> None:
    async def both() -> int:
        with pytest.raises(settler.SettlementFailed, match="NotFoundError"):
            await remote.settle("nobody", [event("e1", platform="nobody")])
        # The connection is still good for the next submission.
        return len((await remote.settle("amap", [event("e4")])).receipts)

    assert asyncio.run(both()) == 1


def test_a_workers_requests_share_one_connection_and_get_their_own_receipts(
    remote: settler.RemoteSettlement,
) -> None:
    """Concurrent requests of one worker travel over one connection, answered out of order
    as their groups settle, each with its own receipts."""

    def serving() -> set[threading.Thread]:
        # The settlement process (a thread here) reads each connection on a thread of its own.
        return {t for t in threading.enumerate() if t.name == "puhui-settler"}

    before = serving()

    async def many() -> tuple[list[list[str | None]], int]:
        answers = await asyncio.gather(
            *(
                remote.settle("amap", [event(f"c{i}-{j}") for j in range(i % 3 + 1)])
                for i in range(24)
            )
        )
        connections = len(serving() - before)
        await remote.aclose()
        return [[r.record_id for r in a.receipts] for a in answers], connections

    ids, connections = asyncio.run(many())
    assert ids == [[f"c{i}-{j}" for j in range(i % 3 + 1)] for i in range(24)]
    assert connections == 1


def test_a_client_without_the_key_is_refused(
    tmp_path: Path, remote: settler.RemoteSettlement
) -> None:
    stranger = settler.RemoteSettlement(remote.address, secrets.token_bytes(32))
    with pytest.raises(multiprocessing.AuthenticationError):
        _settle(stranger, "amap", [event("e5")])


def test_a_settlement_process_that_dies_is_started_again(app: App, tmp_path: Path) -> None:
    """Killed mid-run, the process is started again at the same address; a worker's next
    submission after the failed one settles."""
    admin.add_platform(app, "amap")
    process = settler.SettlementProcess(
        app.settings.database_url, str(app.settings.key_file), str(tmp_path)
    )
    try:
        client = settler.RemoteSettlement(process.address, process.authkey)

        async def across_the_restart() -> list[str]:
            assert len((await client.settle("amap", [event("k1")])).receipts) == 1
            first = process._process
            assert first.pid is not None
            os.kill(first.pid, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while True:
                try:
                    receipts = (await client.settle("amap", [event("k2")])).receipts
                    break
                except settler.SettlementFailed:
                    assert time.monotonic() < deadline, "not started again"
                    await asyncio.sleep(0.2)
            assert process._process is not first
            await client.aclose()
            return [r.status for r in receipts]

        assert asyncio.run(across_the_restart()) == ["credited"]
    finally:
        process.stop()
    assert ledger.verify(app) == []
