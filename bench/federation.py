"""Benchmark: claims registered per second at the common mechanism's registry.

    python -m bench.federation [--claims 300000] [--batch 5000] [--sqlite]

Generates `--claims` claims as nodes send them (`domain.federation`: keyed digests of citizens
and refs, trip intervals; a fifth of them the same behaviour as an earlier claim, by ref or by
an overlapping trip), in signed batches of `--batch` (built and signed before the clock
starts: the registry's work is measured, not the nodes'). Then, in the same run, each on a
database of its own in one PostgreSQL cluster with durable settings (fsync, synchronous commit,
full-page writes; `--sqlite`: SQLite files in WAL mode):

- `bare`: the same rows inserted into a table of the same columns and indexes as
  `common_claims`, one transaction per batch, one thread: the floor;
- `1 node`: every batch from one node, one after another, through `federation.receive` (the
  node's signature checked, the batch parsed, its claims judged against every live claim
  they can meet and stored, the answer built and signed, all in one transaction per batch);
- `3 nodes`: the batches split among three nodes sending at once (each its own in order).

Prints claims per second, the ratio to `bare`, and batch latency p50 / p99; writes them to
`bench/out/federation-<claims>.json`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

ROOT = Path(__file__).resolve().parent.parent
NODES = ("BJ", "SH", "GZ")
MINUTE = 60_000
DAY0 = 1_790_812_800_000  # 2026-10-01 08:00 China time


def _hex(*parts: object) -> str:
    return hashlib.sha256(repr(parts).encode()).hexdigest()


def claims(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """Claims as a node's batch carries them: four fifths new behaviours, one fifth the same
    behaviour as an earlier claim (by ref, or an overlapping trip of the same citizen)."""
    rng = random.Random(seed)
    citizens = max(1, n // 5)
    out: list[dict[str, Any]] = []
    for i in range(n):
        if out and rng.random() < 0.2:
            earlier = out[rng.randrange(len(out))]
            item = {**earlier, "id": _hex("id", i)[:40]}
            if "start_ms" in item:
                item["start_ms"] += MINUTE
                item["end_ms"] += MINUTE
            out.append(item)
            continue
        item = {"op": "claim", "id": _hex("id", i)[:40]}
        if rng.random() < 0.3:
            item["ref"] = _hex("ref", i)
        if rng.random() < 0.85 or "ref" not in item:
            start = DAY0 + rng.randrange(30 * 24 * 60) * MINUTE
            item |= {
                "citizen": _hex("citizen", rng.randrange(citizens)),
                "start_ms": start,
                "end_ms": start + rng.randint(5, 60) * MINUTE,
            }
        out.append(item)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--claims", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=5_000)
    parser.add_argument("--sqlite", action="store_true", help="SQLite instead of PostgreSQL")
    args = parser.parse_args()

    sys.path.insert(0, str(ROOT))
    from sqlalchemy import Column, MetaData, Table

    from puhui.adapters.sql import tables as t
    from puhui.bootstrap import App, bootstrap
    from puhui.config import Settings
    from puhui.domain.federation import PROTOCOL, canonical, claims_key, key_fingerprint
    from puhui.service import admin, federation
    from tests.pgcluster import DURABLE, PgCluster

    work = Path(tempfile.mkdtemp(prefix="puhui-federation-bench-"))
    items = claims(args.claims)
    batches = [items[i : i + args.batch] for i in range(0, len(items), args.batch)]
    keys = {n: Ed25519PrivateKey.generate() for n in NODES}
    fingerprint = key_fingerprint(claims_key(b"bench" * 8))
    now = datetime(2026, 11, 1, tzinfo=UTC)

    def registry_app(url: str, name: str) -> App:
        app = bootstrap(Settings(url, work / f"{name}.key"), clock=lambda: now)
        admin.init(app)
        for n, k in keys.items():
            public = k.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            federation.enrol(app, n, public.hex(), fingerprint)
        return app

    def signed(app: App, plan: dict[str, list[list[dict[str, Any]]]]) -> dict[str, list]:
        own = federation.public_key(app)
        out: dict[str, list] = {}
        for node, parts in plan.items():
            out[node] = []
            for number, part in enumerate(parts, start=1):
                body = canonical(
                    {
                        "protocol": PROTOCOL,
                        "registry": own,
                        "node": node,
                        "batch": number,
                        "events": part,
                        "tallies": {},
                    }
                )
                out[node].append((body, keys[node].sign(body).hex()))
        return out

    def send(app: App, node: str, bodies: list, latencies: list[float]) -> None:
        for body, signature in bodies:
            started = time.perf_counter()
            federation.receive(app, node, body, signature)
            latencies.append(time.perf_counter() - started)

    def run(app: App, plan: dict[str, list[list[dict[str, Any]]]]) -> dict[str, Any]:
        bodies = signed(app, plan)
        latencies: list[float] = []
        threads = [
            threading.Thread(target=send, args=(app, node, bodies[node], latencies))
            for node in plan
        ]
        started = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        seconds = time.perf_counter() - started
        order = federation.registry(app).order()
        assert len(order) == len(items), (len(order), len(items))
        duplicates = sum(1 for *_, verdict, _w in order if verdict == "duplicate")
        return {
            "seconds": round(seconds, 3),
            "claims_per_s": round(len(items) / seconds),
            "duplicates": duplicates,
            "p50_ms": round(statistics.median(latencies) * 1000, 1),
            "p99_ms": round(sorted(latencies)[int(0.99 * (len(latencies) - 1))] * 1000, 1),
        }

    def bare(url: str) -> dict[str, Any]:
        app = bootstrap(Settings(url, work / "bare.key"), clock=lambda: now)
        admin.init(app)
        copy = Table(
            "bench_claims",
            MetaData(),
            *(Column(c.name, c.type, nullable=c.nullable) for c in t.common_claims.columns),
        )
        with app.engine.begin() as conn:
            copy.create(conn)
            for index in ("ref", "citizen, start_ms"):
                name = "ix_bench_claims_" + index.replace(", ", "_")
                conn.exec_driver_sql(f"create index {name} on bench_claims ({index})")
            conn.exec_driver_sql(
                "create unique index ux_bench_claims on bench_claims (node, claim_id)"
            )
        position = 0
        started = time.perf_counter()
        for part in batches:
            rows = []
            for item in part:
                position += 1
                rows.append(
                    {
                        "position": position,
                        "node": "BJ",
                        "claim_id": item["id"],
                        "batch": 1,
                        "ref": item.get("ref"),
                        "citizen": item.get("citizen"),
                        "start_ms": item.get("start_ms"),
                        "end_ms": item.get("end_ms"),
                        "verdict": "first",
                        "reasons": "",
                        "of_position": None,
                        "withdrawn_at": None,
                    }
                )
            with app.engine.begin() as conn:
                conn.execute(copy.insert(), rows)
        seconds = time.perf_counter() - started
        app.close()
        return {"seconds": round(seconds, 3), "claims_per_s": round(len(items) / seconds)}

    def three(parts: list) -> dict[str, list]:
        plan: dict[str, list] = {n: [] for n in NODES}
        for i, part in enumerate(parts):
            plan[NODES[i % 3]].append(part)
        return plan

    results: dict[str, Any] = {"claims": len(items), "batch": args.batch}

    def measure(url_of: Any) -> None:
        results["bare"] = bare(url_of("bare"))
        print(f"bare insert: {results['bare']}", flush=True)
        for name, plan in (("1 node", {"BJ": batches}), ("3 nodes", three(batches))):
            label = "nodes_" + name.split()[0]
            app = registry_app(url_of(label), label)
            try:
                results[name] = run(app, plan)
            finally:
                app.close()
            results[name]["x_bare"] = round(
                results[name]["claims_per_s"] / results["bare"]["claims_per_s"], 3
            )
            print(f"{name}: {results[name]}", flush=True)

    if args.sqlite:
        results["database"] = "sqlite"
        measure(lambda name: f"sqlite:///{work / name}.db")
    else:
        results["database"] = "postgresql (durable)"
        with PgCluster(settings=DURABLE) as cluster:
            measure(cluster.create_database)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    suffix = "-sqlite" if args.sqlite else ""
    (out / f"federation-{len(items)}{suffix}.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
