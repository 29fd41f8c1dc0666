"""Fixtures of the end-to-end tests: the `puhui` command on a fresh database, and `puhui serve`
as a real uvicorn process with a client that signs its requests."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from puhui.domain import signing
from tests.pgcluster import free_port


def _puhui() -> list[str]:
    script = Path(sys.executable).with_name("puhui")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "puhui.entrypoints.cli"]


class Server:
    def __init__(self, base: str, process: subprocess.Popen[str]) -> None:
        self.base = base
        self.process = process

    def call(
        self, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(
            self.base + path, data=body or None, method=method, headers=headers or {}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def signed(self, creds: dict[str, str], method: str, path: str, payload: Any = None) -> Any:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = signing.signed_headers(
            creds["key_id"], creds["secret"], method, path, body, int(time.time()),
            secrets.token_hex(16),
        )  # fmt: skip
        status, _, data = self.call(
            method, path, body, {**headers, "Content-Type": "application/json"}
        )
        return status, json.loads(data)


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Any:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env["PUHUI_DATABASE_URL"] = database_url
    env["PUHUI_KEY_FILE"] = str(tmp_path / "subject.key")

    def run(*args: str) -> str:
        done = subprocess.run(
            [*_puhui(), *args], capture_output=True, text=True, env=env, timeout=300, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    run.env = env  # type: ignore[attr-defined]
    run.argv = _puhui()  # type: ignore[attr-defined]
    run("init")
    return run


def credentials_of(output: str) -> dict[str, str]:
    key = re.search(r"API key id: (\S+)", output)
    secret = re.search(r"API secret: (\S+)", output)
    assert key, output
    assert secret, output
    return {"key_id": key.group(1), "secret": secret.group(1)}


def start_server(cli: Any, tmp_path: Path, workers: str = "2") -> Server:
    """`puhui serve` on a free port, its output in `server.log`, once it answers `/readyz`."""
    port = free_port()
    with (tmp_path / "server.log").open("w") as log:
        process = subprocess.Popen(
            [*_puhui(), "serve", "--port", str(port), "--workers", workers],
            env=cli.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 60
    while True:
        try:
            if server.call("GET", "/readyz")[0] == 200:
                break
        except OSError:
            pass
        assert process.poll() is None, (tmp_path / "server.log").read_text()
        assert time.monotonic() < deadline, "the server did not become ready in 60 s"
        time.sleep(0.2)
    return server


def children(pid: int) -> list[int]:
    """The processes a process started (Linux)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


@pytest.fixture
def server(cli: Any, tmp_path: Path) -> Iterator[Server]:
    server = start_server(cli, tmp_path)
    yield server
    server.process.terminate()
    server.process.wait(timeout=30)
