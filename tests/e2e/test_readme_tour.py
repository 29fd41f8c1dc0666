"""End to end: the README's five-minute tour as a newcomer types it. In an empty folder the demo
behind `make run` loads its data and `puhui serve` answers, as `make run` leaves them; then every
command of the tour runs, in the order the README shows, and succeeds."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pgcluster import PgCluster, free_port

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
BIN = Path(sys.executable).parent


def tour() -> list[str]:
    """The commands of the tour's shell block, without their comments."""
    section = README.split("## Five-minute tour", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    lines = (re.sub(r"(^|\s)#.*$", "", line).strip() for line in block.splitlines())
    return [line for line in lines if line]


def newcomer_env() -> dict[str, str]:
    """A shell as `make run` leaves it: no database or key named, the project's venv first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PUHUI_")}
    env |= {"COLUMNS": "200", "NO_COLOR": "1", "PATH": f"{BIN}:{env.get('PATH', '')}"}
    return env


def run(command: str, folder: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        ["bash", "-c", command],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, f"$ {command}\n{done.stderr}"
    return done.stdout


@pytest.fixture
def made(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder where `make run` has loaded the demo data, and the address it serves on."""
    env = newcomer_env() | {"BIN": str(BIN), "PYTHONPATH": str(ROOT)}
    demo = run(str(ROOT / "scripts" / "demo"), tmp_path, env)
    assert "ledger sound" in demo
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(
        ["puhui", "serve", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        assert server.poll() is None, (tmp_path / "server.log").read_text()
        assert time.monotonic() < deadline, "the server did not become ready in 60 s"
        time.sleep(0.2)
    yield tmp_path, base
    server.terminate()
    server.wait(timeout=30)
    log.close()


@pytest.mark.slow
def test_every_command_of_the_tour_succeeds_in_order(made: tuple[Path, str]) -> None:
    folder, base = made
    # The server's address leads to the dashboard; the docs, document and metrics are there.
    for path, expected in [("/", "/dashboard"), ("/docs", "/docs"), ("/openapi.json", ""),
                           ("/metrics", "")]:  # fmt: skip
        with urllib.request.urlopen(base + path, timeout=30) as response:
            assert response.status == 200, path
            assert response.url.endswith(expected or path), path

    env = newcomer_env()
    commands = tour()
    assert commands[0] == "export PATH=$PWD/.venv/bin:$PATH"  # the project's venv: here, BIN
    said: list[tuple[str, str]] = []
    for command in commands[1:]:
        if "PH-…" in command:  # "the id the retirement printed"
            retired = said_to(said, "puhui account retire")[0]
            certificate = re.search(r'"certificate": "(PH-[0-9A-F-]+)"', retired)
            assert certificate, retired
            command = command.replace("PH-…", certificate.group(1))
        said.append((command, run(command, folder, env)))

    assert "nothing is credited twice" in said_to(said, "puhui ingest")[0]
    assert "ledger sound" in said_to(said, "puhui ledger verify")[0]
    shown = said_to(said, "puhui account show")
    before, after = (re.search(r"balance ([0-9,]+) g", out) for out in (shown[0], shown[-1]))
    assert before, shown[0]
    assert after, shown[-1]
    spent = int(before.group(1).replace(",", "")) - int(after.group(1).replace(",", ""))
    assert spent == 154 + 500  # a car kilometre retired, a river-clean donation
    assert "retirement certificate" in said_to(said, "puhui certificate show")[0]
    batch = "CN-PH-BJ-BJ-LOW-CARBON-TRAVEL.V1.0.0-2026-11-1-"
    assert batch in said_to(said, "puhui market batches")[0]
    assert "2026 ESG report" in said_to(said, "puhui market retirements")[0]
    exported = (folder / "units.csv").read_text(encoding="utf-8")
    assert exported.startswith("serialNumberBlock,"), exported[:200]
    assert "Retired,2026 ESG report" in exported


def said_to(said: list[tuple[str, str]], prefix: str) -> list[str]:
    """What the commands starting with `prefix` printed, in order."""
    found = [out for command, out in said if command.startswith(prefix)]
    assert found, prefix
    return found


@pytest.mark.postgres
def test_the_readme_line_for_postgresql_initialises_a_database(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    line = re.search(r"`(PUHUI_DATABASE_URL=postgresql://user@host/db puhui init)`", README)
    assert line, "the README no longer shows how to use PostgreSQL"
    url = pg_cluster.create_database("readme_line")
    command = line.group(1).replace("postgresql://user@host/db", url)
    out = run(command, tmp_path, newcomer_env())
    assert "database at revision" in out
