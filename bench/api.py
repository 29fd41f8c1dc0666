"""Benchmark: the HTTP API under load, on a real server on loopback, against a bare baseline.

    python -m bench.api [--seconds 10] [--connections 64] [--workers 2] [--sqlite]

Starts a PostgreSQL cluster (durable settings) unless `--sqlite`, initialises a database, registers
a platform with the real `puhui` commands, then serves it with `puhui serve --workers N`. Beside
it, a bare FastAPI application (`bench.bare_api`, same worker count) validates the same request
bodies with the same models and answers at once: the floor of any endpoint on this stack.

Scenarios, each for `--seconds` with `--connections` concurrent clients (one asyncio client
process on the same machine, so client and server share its cores):

- `batch 100`: signed POST /v1/records with 100 new records (distinct citizens, no caps hit),
  durably committed before the response;
- `single`: signed POST /v1/records with one new record;
- `balance`: GET /v1/me with a citizen token.

On PostgreSQL a third server (`bench.floor_api`, same worker count, its own database of the same
cluster) answers the two submission scenarios after writing what any design must keep for each
record of a new citizen (its pseudonym with its balance, a claim row with its dedup indexes, one
transfer), group-committed durably, and nothing else: the `writes floor`, the most any design
that keeps those rows can reach against the bare endpoint on this machine.

Reports requests/s, records/s, p50 and p99 latency, errors, and the ratio of each to the bare
endpoint measured in the same run. Results go to `bench/out/api.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from puhui.bootstrap import bootstrap
from puhui.config import Settings
from puhui.domain import signing
from puhui.domain.consent import Scope
from puhui.service import citizens, consent, queries
from tests.pgcluster import DURABLE, PgCluster, free_port

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).parent.parent


def _puhui(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "puhui.entrypoints.cli", *args],
        env=env, capture_output=True, text=True, check=True, cwd=ROOT,
    )  # fmt: skip
    return done.stdout


def _uvicorn(
    app: str, port: int, args: argparse.Namespace, env: dict[str, str], log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """Serve an ASGI application of `bench/` with the workers and nice increment of puhui's."""
    command = [
        *("nice", "-n", str(args.workers_nice), sys.executable, "-m", "uvicorn", app),
        *("--port", str(port), "--workers", str(args.workers)),
        *("--log-level", "warning", "--no-access-log"),
    ]
    return subprocess.Popen(command, env=env, stdout=log, stderr=log, cwd=ROOT)


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            if httpx2.get(url, timeout=2).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} not ready in 60 s")


class Records:
    """Fresh, valid, independent records: one new citizen each, paperless services."""

    def __init__(self) -> None:
        self.n = 0

    def take(self, k: int) -> list[dict[str, Any]]:
        out = []
        for _ in range(k):
            self.n += 1
            out.append(
                {
                    "platform": "bench",
                    "record_id": f"B{self.n:012d}",
                    "subject": f"1{30_000_000_00 + self.n:010d}",
                    "scene": "paperless",
                    "region": "110000",
                    "start": "2026-10-02T10:00:00+08:00",
                    "quantity": 1,
                }
            )
        return out


async def _load(
    base: str,
    connections: int,
    seconds: float,
    build: Any,
) -> dict[str, Any]:
    """Run `connections` clients for `seconds`; `build()` returns (method, path, body, headers,
    records)."""
    latencies: list[float] = []
    errors = 0
    records = 0
    limits = httpx2.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx2.AsyncClient(base_url=base, limits=limits, timeout=60) as client:
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors, records
            while time.perf_counter() < stop:
                method, path, body, headers, k = build()
                started = time.perf_counter()
                try:
                    response = await client.request(method, path, content=body, headers=headers)
                    ok = response.status_code == 200
                except httpx2.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - started)
                if ok:
                    records += k
                else:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - began
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {
        "requests": len(latencies),
        "seconds": elapsed,
        "requests_per_s": len(latencies) / elapsed,
        "records_per_s": records / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "errors": errors,
    }


SCENARIOS = ("batch 100", "single", "balance")


def _groups(base: str) -> tuple[float, float, float]:
    """Settled groups so far, their submissions and their seconds, from the server's metrics."""
    text = httpx2.get(base + "/metrics").text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return (
        values.get("puhui_settlement_group_submissions_count", 0.0),
        values.get("puhui_settlement_group_submissions_sum", 0.0),
        values.get("puhui_settlement_group_seconds_sum", 0.0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--workers-nice",
        type=int,
        default=5,
        help="the workers' nice increment, puhui's (`puhui serve --workers-nice`) and the bare "
        "server's alike",
    )
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    parser.add_argument(
        "--scenario",
        action="append",
        choices=SCENARIOS,
        help="Run only this scenario (repeatable); all of them by default.",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="puhui-api-bench-"))
    cluster = None
    if args.sqlite:
        url = f"sqlite:///{work / 'bench.db'}"
    else:
        cluster = PgCluster(settings=DURABLE).start()
        url = cluster.create_database("bench")
    env = {**os.environ, "PUHUI_DATABASE_URL": url, "PUHUI_KEY_FILE": str(work / "bench.key")}
    env["PYTHONPATH"] = str(ROOT)
    if cluster is not None:
        env["FLOOR_DATABASE_URL"] = cluster.create_database("floor")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        _puhui(env, "init")
        out = _puhui(env, "platform", "add", "bench")
        key_id = re.search(r"API key id: (\S+)", out).group(1)  # type: ignore[union-attr]
        secret = re.search(r"API secret: (\S+)", out).group(1)  # type: ignore[union-attr]

        port, bare_port = free_port(), free_port()
        log = (work / "server.log").open("wb")
        processes.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "puhui.entrypoints.cli",
                    "serve",
                    "--port",
                    str(port),
                    "--workers",
                    str(args.workers),
                    "--workers-nice",
                    str(args.workers_nice),
                ],
                env=env,
                stdout=log,
                stderr=log,
                cwd=ROOT,
            )
        )
        # The bare workers stand where puhui's do, beside the load generator.
        processes.append(_uvicorn("bench.bare_api:app", bare_port, args, env, log))
        base, bare = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
        _wait(base + "/readyz", processes[0])
        _wait(bare + "/healthz", processes[1])
        writes_floor = None
        if cluster is not None:
            floor_port = free_port()
            processes.append(_uvicorn("bench.floor_api:app", floor_port, args, env, log))
            writes_floor = f"http://127.0.0.1:{floor_port}"
            _wait(writes_floor + "/healthz", processes[2])

        source = Records()

        def submit(k: int, path: str, sign: bool) -> Any:
            def build() -> tuple[str, str, bytes, dict[str, str], int]:
                body = json.dumps({"records": source.take(k)}).encode()
                headers = {"content-type": "application/json"}
                if sign:
                    headers |= signing.signed_headers(
                        key_id, secret, "POST", path, body, int(time.time()),
                        secrets.token_hex(16),
                    )  # fmt: skip
                return "POST", path, body, headers, k

            return build

        # A citizen granted the platform their balance (as on the consent page); the access
        # token is checked against the grant on every call, as a member app's would be.
        grantor = bootstrap(Settings(url, work / "bench.key"))
        try:
            grant = consent.grant(
                grantor, queries.pseudonym_of(grantor, "13000000001"), "bench",
                frozenset({Scope.BALANCE}), 30,
            )  # fmt: skip
            token = citizens.issue_access_token(grantor, grant).token
        finally:
            grantor.close()
        me = {"authorization": f"Bearer {token}"}

        def balance() -> tuple[str, str, bytes, dict[str, str], int]:
            return "GET", "/v1/me", b"", me, 1

        scenarios = {
            "batch 100": (submit(100, "/v1/records", True), submit(100, "/v1/records", False)),
            "single": (submit(1, "/v1/records", True), submit(1, "/v1/records", False)),
            "balance": (balance, balance),
        }
        results: dict[str, Any] = {
            "database": "sqlite" if args.sqlite else "postgresql",
            "workers": args.workers,
            "connections": args.connections,
            "seconds": args.seconds,
            "scenarios": {},
        }
        for name, (real, baseline) in scenarios.items():
            if args.scenario and name not in args.scenario:
                continue
            before = _groups(base)
            measured = asyncio.run(_load(base, args.connections, args.seconds, real))
            groups, grouped, settling = (b - a for a, b in zip(before, _groups(base), strict=True))
            if groups:
                measured["groups"] = groups
                measured["submissions_per_group"] = grouped / groups
                measured["ms_per_group"] = 1000 * settling / groups
            floor = asyncio.run(_load(bare, args.connections, args.seconds, baseline))
            results["scenarios"][name] = {"puhui": measured, "bare": floor}
            print(
                f"{name:10s} puhui {measured['requests_per_s']:8.1f} req/s "
                f"{measured['records_per_s']:9.1f} rec/s p50 {measured['p50_ms']:7.1f} ms "
                f"p99 {measured['p99_ms']:7.1f} ms errors {measured['errors']} | bare "
                f"{floor['requests_per_s']:8.1f} req/s p99 {floor['p99_ms']:6.1f} ms | ratio "
                f"{measured['requests_per_s'] / floor['requests_per_s']:.3f}",
                flush=True,
            )
            if writes_floor is not None and name != "balance":
                written = asyncio.run(_load(writes_floor, args.connections, args.seconds, baseline))
                results["scenarios"][name]["writes floor"] = written
                print(
                    f"{'':10s} writes floor {written['requests_per_s']:8.1f} req/s "
                    f"p99 {written['p99_ms']:6.1f} ms errors {written['errors']} | ratio "
                    f"{written['requests_per_s'] / floor['requests_per_s']:.3f}",
                    flush=True,
                )
            if groups:
                print(
                    f"{'':10s} {groups:.0f} groups of {measured['submissions_per_group']:.1f} "
                    f"submissions, {measured['ms_per_group']:.0f} ms each",
                    flush=True,
                )
        OUT.mkdir(exist_ok=True)
        (OUT / "api.json").write_text(json.dumps(results, indent=2))
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(timeout=30)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
