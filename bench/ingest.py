"""Benchmark: 1 M records end to end (files → receipts and ledger) on SQLite and PostgreSQL.

    python -m bench.ingest --records 1000000 [--sqlite-only] [--format jsonl|csv|parquet]

Generates realistic multi-platform files with `bench.generate`, then, for each database, runs
`init`, registers the platforms and ingests every file in a fresh child process (so that its
peak memory is its own), and reports records per second, the share of time per stage and the
peak resident memory. Two baselines are measured in the same run, on the same files, so that
the figures can be read as ratios on a shared, noisy machine:

- `read`: streaming every file through the reader into Arrow and nothing else (the floor of
  any ingest that parses the files);
- `one row per record`: inserting one narrow row per record (record_id, status, grams) into an
  unindexed table of the same database in one transaction (the floor of any design that keeps
  a row per record);
- `claims floor`: writing, for every record, only what any design must keep in the database
  for dedup, caps and accounts: a narrow claim row (ids, citizen, scene, ref, start and end,
  status, grams) with the three indexes dedup needs, ONE transfer row per credit and the
  balances aggregated per chunk, through the same bulk path, one transaction per chunk; no
  payload, receipt text, validation, lookup or settlement (the floor of the layout engine v2
  asks for, whatever else is changed);
- `rows kept`: writing what puhui keeps for a credited record and nothing else: its `records`
  row (every column, every index) through the same bulk path as ingest, then its credit
  transfer and the balances, with the same set-based statements, one transaction per chunk;
  no validation, lookup or settlement (the floor of this schema).

Ratios are given both ways: `time × read` (how many times longer than reading) and
`throughput × read` (records per second as a share of reading's, the figure the targets use).

Results go to `bench/out/ingest-<records>.json` and are printed as a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "out"


def child(url: str, data: Path, mode: str) -> dict[str, Any]:
    """Run one measurement in this process and return its figures."""
    from datetime import UTC, datetime

    from puhui.adapters.batch.reader import read_chunks
    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.service import admin, ingest

    files = json.loads((data / "files.json").read_text())
    paths = [(platform, data / name) for platform, name in files]
    records = 0
    start = time.perf_counter()
    result: dict[str, Any] = {}
    if mode == "read":
        for _, path in paths:
            for chunk in read_chunks(path):
                records += chunk.num_rows
    elif mode == "rows":
        records = _narrow_rows(url, paths)
    elif mode == "kept":
        records = _rows_kept(url, paths)
    elif mode == "floor":
        records = _claims_floor(url, paths)
    else:
        settings = Settings(url, Path(tempfile.mkdtemp()) / "bench.key")
        app = bootstrap(settings, clock=lambda: datetime(2026, 11, 1, tzinfo=UTC))
        admin.init(app)
        for platform in sorted({p for p, _ in paths}):
            admin.add_platform(app, platform)
        start = time.perf_counter()
        stages: dict[str, float] = {}
        statuses: dict[str, int] = {}
        with tempfile.TemporaryDirectory(prefix="puhui-receipts-") as folder:
            receipts = Path(folder)
            for n, (platform, path) in enumerate(paths):
                with ingest.receipts_csv(receipts / f"{n:02d}-{path.stem}.csv") as sink:
                    report = ingest.ingest_files(app, platform, [path], sink=sink)
                records += report.records
                for stage, seconds in report.seconds.items():
                    stages[stage] = stages.get(stage, 0.0) + seconds
                for status, n in report.by_status.items():
                    statuses[status] = statuses.get(status, 0) + n
        result = {"stages": stages, "statuses": statuses}
        app.close()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"records": records, "seconds": seconds, "peak_bytes": peak, **result}


def _narrow_rows(url: str, paths: list[tuple[str, Path]]) -> int:
    """Insert one narrow row per record into an unindexed table, in one transaction."""
    from sqlalchemy import text

    from puhui.adapters.batch.reader import read_chunks
    from puhui.adapters.sql.bulk import insert_rows
    from puhui.adapters.sql.engine import make_engine

    engine = make_engine(url)
    n = 0
    with engine.begin() as conn:
        conn.execute(text("drop table if exists bench_rows"))
        conn.execute(
            text(
                "create table bench_rows "
                "(seq bigint, record_id varchar(128), status varchar(10), reduction_g bigint)"
            )
        )
        for _, path in paths:
            for chunk in read_chunks(path):
                ids = chunk.column("record_id").to_pylist()
                insert_rows(
                    conn,
                    "bench_rows",
                    ("seq", "record_id", "status", "reduction_g"),
                    [(n + i, r, "credited", 100) for i, r in enumerate(ids)],
                )
                n += len(ids)
        conn.execute(text("drop table bench_rows"))
    engine.dispose()
    return n


_FLOOR_TABLES = (
    "create table floor_claims (seq bigint primary key, platform_id integer not null, "
    "record_id varchar(128) not null, subject_id integer not null, scene varchar(16) not null, "
    "ref varchar(256), start_ms bigint not null, end_ms bigint, status varchar(10) not null, "
    "reduction_g bigint not null)",
    "create unique index floor_claims_key on floor_claims (platform_id, record_id)",
    "create index floor_claims_trips on floor_claims (subject_id, start_ms)",
    "create unique index floor_claims_ref on floor_claims (scene, ref) where ref is not null",
    "create table floor_transfers (id bigint primary key, debit integer not null, "
    "credit integer not null, amount bigint not null, record_seq bigint not null)",
    "create unique index floor_transfers_record on floor_transfers (record_seq)",
    "create table floor_balances (account_id integer primary key, balance bigint not null)",
)


def _claims_floor(url: str, paths: list[tuple[str, Path]]) -> int:
    """Write a claim row and a transfer row for every record, as if all were credited, and the
    balances per chunk: the floor of engine v2's layout."""
    from sqlalchemy import text

    from puhui.adapters.batch.reader import read_chunks
    from puhui.adapters.sql.bulk import insert_rows
    from puhui.adapters.sql.engine import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        for ddl in _FLOOR_TABLES:
            conn.execute(text(ddl))
    n = 0
    for _, path in paths:
        for chunk in read_chunks(path):
            ids = chunk.column("record_id").to_pylist()
            k = len(ids)
            seqs = range(n + 1, n + k + 1)
            citizens = [s % 300_000 + 1 for s in seqs]
            claims = [
                (
                    s,
                    1,
                    f"{s}-{r}"[:128],
                    c,
                    "bus",
                    f"ref-{s}" if s % 5 == 0 else None,
                    1_790_000_000_000 + s * 60_000,
                    1_790_000_000_000 + s * 60_000 + 1_200_000,
                    "credited",
                    1079,
                )
                for s, r, c in zip(seqs, ids, citizens, strict=True)
            ]
            transfers = [(s, 0, c, 1079, s) for s, c in zip(seqs, citizens, strict=True)]
            with engine.begin() as conn:
                insert_rows(
                    conn,
                    "floor_claims",
                    (
                        "seq",
                        "platform_id",
                        "record_id",
                        "subject_id",
                        "scene",
                        "ref",
                        "start_ms",
                        "end_ms",
                        "status",
                        "reduction_g",
                    ),
                    claims,
                )
                insert_rows(
                    conn,
                    "floor_transfers",
                    ("id", "debit", "credit", "amount", "record_seq"),
                    transfers,
                )
                # Set-based, as ingest does: one statement per chunk, citizens then the source.
                conn.execute(
                    text(
                        "insert into floor_balances (account_id, balance) "
                        "select x.a, sum(x.g) from (select credit as a, amount as g "
                        "from floor_transfers where id between :lo and :hi union all "
                        "select debit, -amount from floor_transfers "
                        "where id between :lo and :hi) x "
                        "group by x.a having true order by x.a = 0, x.a "
                        "on conflict (account_id) do update "
                        "set balance = floor_balances.balance + excluded.balance"
                    ),
                    {"lo": n + 1, "hi": n + k},
                )
            n += k
    engine.dispose()
    return n


def _rows_kept(url: str, paths: list[tuple[str, Path]]) -> int:
    """Write the records rows and credit transfers of every record as if all were credited."""
    import hashlib
    from datetime import UTC, datetime

    import pyarrow as pa

    from puhui.adapters.batch.reader import read_chunks
    from puhui.adapters.sql.intake import RECORD_COLUMNS, IntakeStore
    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.service import admin

    app = bootstrap(Settings(url, Path(tempfile.mkdtemp()) / "bench.key"))
    admin.init(app)
    admin.add_platform(app, "bench")
    at = datetime(2026, 11, 1, tzinfo=UTC)
    n = 0
    for _, path in paths:
        for chunk in read_chunks(path):
            ids = chunk.column("record_id").to_pylist()
            k = len(ids)
            seqs = range(n + 1, n + k + 1)
            values: dict[str, list[Any]] = {c: [None] * k for c in RECORD_COLUMNS}
            values |= {
                "seq": list(seqs),
                "record_id": [f"{s}-{r}"[:128] for s, r in zip(seqs, ids, strict=True)],
                "digest": [hashlib.md5(str(s).encode()).hexdigest() for s in seqs],  # noqa: S324
                "subject_id": [s % 300_000 + 1 for s in seqs],
                "scene": ["bus"] * k,
                "region": ["110000"] * k,
                "start_ms": [1_790_000_000_000 + s * 60_000 for s in seqs],
                "end_ms": [1_790_000_000_000 + s * 60_000 + 1_200_000 for s in seqs],
                "amount_milli": [5000] * k,
                "material": [""] * k,
                "status": ["credited"] * k,
                "reason": [""] * k,
                "reduction_g": [1079] * k,
                "methodology": ["bj-low-carbon-travel@1.0.0"] * k,
                "quantification_id": [1] * k,
            }
            with app.engine.connect() as conn, conn.begin():
                store = IntakeStore(conn)
                platform_id = store.platform_id("bench")
                batch_id = store.new_batch(platform_id, path.name, at)
                first = store.allocate("record", k)
                assert first == n + 1
                store.write_records(batch_id, platform_id, pa.table(values))
                store.post_credits(batch_id, first, first + k - 1, at)
            n += k
    app.close()
    return n


def _reset(url: str, work: Path) -> None:
    """Empty a benchmark database for the next run."""
    if url.startswith("sqlite"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{work / 'bench.db'}{suffix}").unlink(missing_ok=True)
        return
    from sqlalchemy import text

    from puhui.adapters.sql.engine import make_engine

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("drop schema public cascade"))
        conn.execute(text("create schema public"))
    engine.dispose()


def _spawn(url: str, data: Path, mode: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "--child", url, str(data), mode],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def ensure_data(records: int, fmt: str = "jsonl") -> Path:
    """The generated files of `records` records (seed 7), written once into bench/out/."""
    from bench.generate import generate

    OUT.mkdir(exist_ok=True)
    data = OUT / f"data-{records}-{fmt}"
    if not (data / "files.json").exists():
        started = time.perf_counter()
        truth = generate(data, records=records, seed=7, fmt=fmt)
        files = [(platform, Path(path).name) for platform, path in truth.files]
        (data / "files.json").write_text(json.dumps(files))
        print(f"generated {records} records in {time.perf_counter() - started:.1f} s")
    return data


def main() -> None:
    """Generate, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--format", default="jsonl", choices=("jsonl", "csv", "parquet"))
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--child", nargs=3, metavar=("URL", "DATA", "MODE"))
    args = parser.parse_args()
    if args.child:
        url, data, mode = args.child
        print(json.dumps(child(url, Path(data), mode)))
        return

    data = ensure_data(args.records, args.format)

    results: dict[str, Any] = {"records": args.records, "format": args.format, "runs": {}}
    results["runs"]["read"] = _spawn("sqlite://", data, "read")
    work = Path(tempfile.mkdtemp(prefix="puhui-bench-"))
    backends = {"sqlite": f"sqlite:///{work / 'bench.db'}"}
    cluster = None
    if not args.sqlite_only:
        sys.path.insert(0, str(Path(__file__).parent.parent))
        from tests.pgcluster import DURABLE, PgCluster

        # Durable, as in production: the test clusters turn fsync off, a benchmark must not.
        cluster = PgCluster(settings=DURABLE).start()
        backends["postgresql"] = cluster.create_database("bench")
    try:
        for name, url in backends.items():
            results["runs"][f"{name} one row per record"] = _spawn(url, data, "rows")
            _reset(url, work)
            results["runs"][f"{name} claims floor"] = _spawn(url, data, "floor")
            _reset(url, work)
            results["runs"][f"{name} rows kept"] = _spawn(url, data, "kept")
            _reset(url, work)
            results["runs"][f"{name} ingest"] = _spawn(url, data, "ingest")
    finally:
        if cluster is not None:
            cluster.stop()
    target = OUT / f"ingest-{args.records}-{args.format}.json"
    target.write_text(json.dumps(results, indent=2))
    print(report(results))
    print(f"\n(raw figures in {target}; machine: {os.cpu_count()} cores)")


def report(results: dict[str, Any]) -> str:
    """The results as Markdown."""
    runs = results["runs"]
    read = runs["read"]["seconds"]
    lines = [
        f"{results['records']} records ({results['format']})",
        "",
        "| run | seconds | records/s | time × read | throughput × read | "
        "time × one row per record | time × rows kept | peak memory |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def ratio(run: dict[str, Any], baseline: dict[str, Any] | None) -> str:
        if baseline is None or baseline is run:
            return "—"
        return f"{run['seconds'] / baseline['seconds']:.1f}"

    for name, run in runs.items():
        backend = name.split()[0]
        narrow = runs.get(f"{backend} one row per record") if name != "read" else None
        kept = runs.get(f"{backend} rows kept") if name.endswith("ingest") else None
        rate = run["records"] / run["seconds"] if run["seconds"] else 0
        lines.append(
            f"| {name} | {run['seconds']:.1f} | {rate:,.0f} | {run['seconds'] / read:.1f} | "
            f"{read / run['seconds']:.3f} | {ratio(run, narrow)} | {ratio(run, kept)} | "
            f"{run['peak_bytes'] / 2**20:,.0f} MiB |"
        )
    for name, run in runs.items():
        if "stages" in run:
            total = sum(run["stages"].values())
            shares = ", ".join(
                f"{stage} {seconds / total:.0%}"
                for stage, seconds in sorted(run["stages"].items(), key=lambda kv: -kv[1])
            )
            lines.append(f"\n{name}, share of time per stage: {shares}; receipts {run['statuses']}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
