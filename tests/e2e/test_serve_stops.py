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

from tests.e2e.conftest import Server, _puhui, free_port


def children(pid: int) -> list[int]:
    """The processes a process started (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


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
    port = free_port()
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen(
            [*_puhui(), "serve", "--port", str(port), "--workers", workers],
            env=cli.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        server = Server(f"http://127.0.0.1:{port}", process)
        deadline = time.monotonic() + 60
        while True:
            try:
                if server.call("GET", "/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert process.poll() is None, (tmp_path / "server.log").read_text()
            assert time.monotonic() < deadline
            time.sleep(0.2)
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
