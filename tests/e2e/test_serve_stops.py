"""`puhui serve` leaves no process behind: stopped (SIGTERM, as a service manager or a test
stops it) it stops its settlement process on the way out; killed (SIGKILL, no time for
anything) its settlement process notices within a few seconds and stops too."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import children, start_server


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.parametrize(
    ("how", "workers"),
    [(signal.SIGTERM, "1"), (signal.SIGTERM, "2"), (signal.SIGKILL, "1")],
    ids=["stopped", "stopped-2-workers", "killed"],
)
def test_no_settlement_process_outlives_the_server(
    cli: Any, tmp_path: Path, how: signal.Signals, workers: str
) -> None:
    """(Killed with several workers, uvicorn's own worker processes outlive their supervisor:
    a service manager stops the whole group; the settlement process stops by itself.)"""
    server = start_server(cli, tmp_path, workers)
    process = server.process
    started = children(process.pid)
    assert started
    process.send_signal(how)
    process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while any(alive(p) for p in started) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in started if alive(p)]
    for p in left:
        subprocess.run(["kill", "-9", str(p)], check=False)
    assert left == [], (tmp_path / "server.log").read_text()
