"""Benchmark: server time of the dashboard's pages over a database of `--records` records.

    python -m bench.dashboard [--records 1000000] [--runs 5] [--postgres]

Ingests the generated files of `bench.ingest` (the same 1 M records, seed 7) into an SQLite
database once (kept in bench/out/ for the next run, and migrated when the schema has moved
on), then requests each page through the ASGI application in process, so that the time is the
server's alone: the public view, the operator's view (staff token), a citizen's view and the
explanation of one of their credits (citizen token), and downloads of a table as CSV and as
Excel. Each is requested `--runs` times after one warm-up; the median and the slowest are
reported, with the ratio to `/healthz` measured the same way in the same run. With
`--postgres` the records are ingested into a throwaway PostgreSQL cluster (durable settings)
instead. Results go to `bench/out/dashboard.json` (`dashboard-postgres.json`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.ingest import OUT, ensure_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="a throwaway PostgreSQL cluster (durable settings), ingested afresh, not SQLite",
    )
    args = parser.parse_args()
    data = ensure_data(args.records)
    if not args.postgres:
        db = OUT / f"dashboard-{args.records}.db"
        results = measure(f"sqlite:///{db}", db.with_suffix(".key"), data, args.runs)
    else:
        from tests.pgcluster import DURABLE, PgCluster

        with PgCluster(settings=DURABLE) as cluster:
            url = cluster.create_database("bench")
            key = OUT / f"dashboard-{args.records}-postgres.key"
            key.unlink(missing_ok=True)
            results = measure(url, key, data, args.runs)
    results["records"] = args.records
    name = "dashboard-postgres.json" if args.postgres else "dashboard.json"
    (OUT / name).write_text(json.dumps(results, indent=2))


def measure(url: str, key: Path, data: Path, runs: int) -> dict[str, Any]:
    """Ingest the data unless the database holds it already, then time every page."""
    from fastapi.testclient import TestClient

    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.entrypoints.api import create_app
    from puhui.service import admin, citizens, ingest, oversight, queries

    files = [
        (platform, data / name) for platform, name in json.loads((data / "files.json").read_text())
    ]
    app = bootstrap(Settings(url, key), clock=lambda: datetime(2026, 11, 1, tzinfo=UTC))
    started = time.perf_counter()
    admin.init(app)  # a database kept from an earlier run is brought to the latest schema
    if not admin.list_platforms(app):
        for platform in sorted({p for p, _ in files}):
            admin.add_platform(app, platform)
        for platform, path in files:
            ingest.ingest_files(app, platform, [path])
        print(f"ingested in {time.perf_counter() - started:.1f} s", flush=True)
    staff = oversight.issue_staff_token(app, f"bench-{time.time_ns()}", oversight.Role.OPERATOR)
    platform, first = files[0]
    subject = json.loads(first.open().readline())["subject"]
    citizen = citizens.issue_session(app, queries.pseudonym_of(app, subject))
    credit = next(
        m.entry_id
        for m in citizens.history(app, citizens.verify_token(app, citizen.token), None, 100)
        if m.kind == "credit"
    )

    results: dict[str, Any] = {"database": app.engine.dialect.name, "runs": runs, "pages": {}}
    with TestClient(create_app(app)) as client:
        client.cookies.set("puhui_staff", staff.token)
        client.cookies.set("puhui_citizen", citizen.token)
        pages = {
            "healthz (baseline)": "/healthz",
            "public": "/dashboard",
            "operator": "/dashboard/operator",
            "citizen": "/dashboard/me",
            "citizen's credit explained": f"/dashboard/me/credits/{credit}",
            "download by_province.csv": "/dashboard/tables/by_province.csv",
            "download health.xlsx": "/dashboard/operator/tables/health.xlsx",
        }
        baseline = 0.0
        for name, path in pages.items():
            assert client.get(path).status_code == 200, path
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                response = client.get(path)
                times.append(1000 * (time.perf_counter() - started))
                assert response.status_code == 200, path
            median = statistics.median(times)
            baseline = baseline or median
            results["pages"][name] = {"median_ms": median, "max_ms": max(times)}
            print(
                f"{name:26s} median {median:8.1f} ms  max {max(times):8.1f} ms  "
                f"× healthz {median / baseline:8.1f}",
                flush=True,
            )
    app.close()
    return results


if __name__ == "__main__":
    main()
