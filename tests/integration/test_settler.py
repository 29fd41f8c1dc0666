"""The settlement process of `puhui serve`, and its client in the workers: receipts, refusals
and failures come back over the socket as they would from the group commit in process."""

from __future__ import annotations

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
from puhui.service import admin, credentials, ledger, queries
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
    client.close()


def test_receipts_come_back_and_a_replayed_nonce_is_refused(
    app: App, remote: settler.RemoteSettlement
) -> None:
    signed = credentials.Signed("amap", "pk_" + "0" * 24, "n" * 16, int(NOW.timestamp() * 1000))
    first = remote.submit("amap", [event("e1"), event("e2", quantity="x")], signed)
    assert first.receipts.column("status").to_pylist() == ["credited", "rejected"]
    with pytest.raises(AuthenticationError) as replay:
        remote.submit("amap", [event("e3")], signed)
    assert replay.value.code == "replayed_nonce"
    with pytest.raises(InputError):
        remote.submit("amap", [])
    assert {r["record_id"] for r in queries.receipts(app, "amap")} == {"e1", "e2"}
    assert ledger.verify(app) == []


def test_a_failed_group_is_a_settlement_failure(remote: settler.RemoteSettlement) -> None:
    with pytest.raises(settler.SettlementFailed, match="NotFoundError"):
        remote.submit("nobody", [event("e1", platform="nobody")])
    # The connection is still good for the next submission.
    assert remote.submit("amap", [event("e4")]).receipts.num_rows == 1


def test_a_client_without_the_key_is_refused(
    tmp_path: Path, remote: settler.RemoteSettlement
) -> None:
    stranger = settler.RemoteSettlement(remote.address, secrets.token_bytes(32))
    with pytest.raises(multiprocessing.AuthenticationError):
        stranger.submit("amap", [event("e5")])


def test_a_settlement_process_that_dies_is_started_again(app: App, tmp_path: Path) -> None:
    """Killed mid-run, the process is started again at the same address; a worker's next
    submission after the failed one settles."""
    admin.add_platform(app, "amap")
    process = settler.SettlementProcess(
        app.settings.database_url, str(app.settings.key_file), str(tmp_path)
    )
    try:
        client = settler.RemoteSettlement(process.address, process.authkey)
        assert client.submit("amap", [event("k1")]).receipts.num_rows == 1
        first = process._process
        os.kill(first.pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            try:
                receipts = client.submit("amap", [event("k2")]).receipts
                break
            except (settler.SettlementFailed, OSError):
                assert time.monotonic() < deadline, "not started again"
                time.sleep(0.2)
        assert receipts.column("status").to_pylist() == ["credited"]
        assert process._process is not first
        client.close()
    finally:
        process.stop()
    assert ledger.verify(app) == []
