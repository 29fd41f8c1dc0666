"""Benchmark: redemptions on PostgreSQL, against a single-statement balance transfer.

    python -m bench.redeem [--seconds 10] [--clients 1 8 16] [--citizens 2000]

Starts a PostgreSQL cluster with durable settings, initialises a database, credits
`--citizens` citizens through a real ingest, and puts rewards in the catalogue: one tree with a
stock of a million (`hot`: every client redeems it, so that all redemptions meet on one
reward's stock and account) and a hundred trees of 100 000 each (`many`: each redemption picks
one at random), at 1 g, so that neither stock nor balances run out. Then, for each number of
clients, one process per client (each with its own connection pool, so that no client waits
for another's Python) runs for `--seconds`:

- `redeem hot`, `redeem many`: `puhui.service.wallet.redeem` for a random citizen with a new
  idempotency key, the call the CLI and the API make: on PostgreSQL one call of
  `puhui_redeem` (claim the key, check, debit the citizen, take from a part of the stock, pay
  into that part's account, post the transfer, record the result), committed durably;
- `transfer` (the baseline): one `UPDATE … WHERE account_id IN (a, b)` moving 1 g between two
  random citizens' rows of a copy of the balances table (same rows, key and fill factor, so
  the ledger itself stays sound), autocommitted (durably), through psycopg directly.

Reports operations/s, p50 and p99 latency, and the ratio of redemptions to transfers measured
in the same run; then `ledger verify` on the database. Results go to `bench/out/redeem.json`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "out"
ROOT = Path(__file__).parent.parent


HOT = ["bench-hot"]
MANY = [f"bench-{i:03d}" for i in range(100)]


def _redeem_worker(
    url: str, key_file: str, work: tuple[list[str], list[str]], seconds: float, seed: int
) -> list[float]:
    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.service import wallet

    pseudonyms, rewards = work
    app = bootstrap(Settings(url, Path(key_file)))
    rng = random.Random(seed)
    latencies: list[float] = []
    wallet.holdings(app, pseudonyms[0])  # connect before the clock starts
    deadline = time.perf_counter() + seconds
    while (start := time.perf_counter()) < deadline:
        reward = rewards[0] if len(rewards) == 1 else rng.choice(rewards)
        wallet.redeem(app, rng.choice(pseudonyms), reward, uuid.uuid4().hex, "bench")
        latencies.append(time.perf_counter() - start)
    app.close()
    return latencies


def _transfer_worker(
    url: str, _key_file: str, accounts: list[int], seconds: float, seed: int
) -> list[float]:
    import psycopg

    rng = random.Random(seed)
    latencies: list[float] = []
    statement = (
        "update bench_balances set balance_g = balance_g "
        "+ case when account_id = %s then -1 else 1 end where account_id in (%s, %s)"
    )
    with psycopg.connect(
        url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        deadline = time.perf_counter() + seconds
        while (start := time.perf_counter()) < deadline:
            a, b = rng.sample(accounts, 2)
            conn.execute(statement, (a, a, b))
            latencies.append(time.perf_counter() - start)
    return latencies


def _run(worker: Any, clients: int, args: tuple[Any, ...], seconds: float) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    with ctx.Pool(clients) as pool:
        results = pool.starmap(worker, [(*args, seconds, seed) for seed in range(clients)])
    latencies = sorted(x for r in results for x in r)
    n = len(latencies)

    def pct(p: float) -> float:
        return 1000 * latencies[min(n - 1, int(p * n))] if n else 0.0

    return {"operations": n, "per_s": n / seconds, "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 16])
    parser.add_argument("--citizens", type=int, default=2000)
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.service import admin, ingest, ledger, queries, wallet
    from tests.builders import event
    from tests.pgcluster import DURABLE, PgCluster

    work = Path(tempfile.mkdtemp(prefix="puhui-redeem-bench-"))
    with PgCluster(settings=DURABLE) as cluster:
        url = cluster.create_database("bench")
        key_file = str(work / "bench.key")
        app = bootstrap(Settings(url, Path(key_file)))
        admin.init(app)
        admin.add_platform(app, "bench")
        subjects = [f"1380{i:07d}" for i in range(args.citizens)]
        ingest.ingest_records(
            app, "bench", [event(f"e{i}", platform="bench", subject=s, quantity="20")
                           for i, s in enumerate(subjects)],
        )  # fmt: skip
        for code, stock in [*((c, 1_000_000) for c in HOT), *((c, 100_000) for c in MANY)]:
            wallet.add_reward(app, code, "Bench tree", "tree", "bench", price_g=1, stock=stock)
        pseudonyms = [queries.pseudonym_of(app, s) for s in subjects]
        with app.engine.begin() as conn:
            accounts = [
                int(a)
                for a in conn.exec_driver_sql(
                    "select id from accounts where kind = 'citizen'"
                ).scalars()
            ]
            conn.exec_driver_sql(
                "create table bench_balances (account_id integer primary key, "
                "balance_g bigint not null) with (fillfactor = 70)"
            )
            conn.exec_driver_sql("insert into bench_balances select * from balances")
        app.close()

        results: dict[str, Any] = {"seconds": args.seconds, "runs": {}}
        for clients in args.clients:
            transfer = _run(_transfer_worker, clients, (url, key_file, accounts), args.seconds)
            run: dict[str, Any] = {"transfer": transfer}
            print(
                f"{clients:3d} clients  transfer {transfer['per_s']:8.1f}/s "
                f"p50 {transfer['p50_ms']:6.1f} ms p99 {transfer['p99_ms']:6.1f} ms",
                flush=True,
            )
            for scenario, rewards in (("hot", HOT), ("many", MANY)):
                redeem = _run(
                    _redeem_worker, clients, (url, key_file, (pseudonyms, rewards)), args.seconds
                )
                ratio = redeem["per_s"] / transfer["per_s"] if transfer["per_s"] else 0.0
                run[f"redeem {scenario}"] = {**redeem, "ratio": ratio}
                print(
                    f"{clients:3d} clients  redeem {scenario:4s} {redeem['per_s']:8.1f}/s "
                    f"p50 {redeem['p50_ms']:6.1f} ms p99 {redeem['p99_ms']:6.1f} ms | "
                    f"× transfer {ratio:.3f}",
                    flush=True,
                )
            results["runs"][str(clients)] = run
        check = bootstrap(Settings(url, Path(key_file)))
        violations = ledger.verify(check)
        check.close()
        results["ledger_violations"] = [v.check for v in violations]
        timed = sum(
            r[f"redeem {scenario}"]["operations"]
            for r in results["runs"].values()
            for scenario in ("hot", "many")
        )
        state = "sound" if not violations else ", ".join(v.check for v in violations)
        print(f"ledger after the run: {state}; {timed} redemptions timed")
    OUT.mkdir(exist_ok=True)
    (OUT / "redeem.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
