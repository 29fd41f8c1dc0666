"""Benchmark: server time of the dashboard's pages over a database of `--records` records.

    python -m bench.dashboard [--records 1000000] [--runs 5]

Ingests the generated files of `bench.ingest` (the same 1 M records, seed 7) into an SQLite
database once (kept in bench/out/ for the next run), then requests each page through the ASGI
application in process, so that the time is the server's alone: the public view, the
operator's view (staff token), a citizen's view (citizen token) and one CSV download. Each is
requested `--runs` times after one warm-up; the median and the slowest are reported, with the
ratio to `/healthz` measured the same way in the same run. Results go to
`bench/out/dashboard.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from datetime import UTC, datetime
from typing import Any

from bench.ingest import OUT, ensure_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.entrypoints.api import create_app
    from puhui.service import admin, citizens, ingest, oversight

    data = ensure_data(args.records)
    files = [
        (platform, data / name) for platform, name in json.loads((data / "files.json").read_text())
    ]
    db = OUT / f"dashboard-{args.records}.db"
    settings = Settings(f"sqlite:///{db}", db.with_suffix(".key"))
    app = bootstrap(settings, clock=lambda: datetime(2026, 11, 1, tzinfo=UTC))
    if not db.exists():
        started = time.perf_counter()
        admin.init(app)
        for platform in sorted({p for p, _ in files}):
            admin.add_platform(app, platform)
        for platform, path in files:
            ingest.ingest_files(app, platform, [path])
        print(f"ingested {args.records} records in {time.perf_counter() - started:.1f} s")
    staff = oversight.issue_staff_token(app, f"bench-{time.time_ns()}", oversight.Role.OPERATOR)
    platform, first = files[0]
    subject = json.loads(first.open().readline())["subject"]
    citizen = citizens.issue_token(app, platform, subject)

    results: dict[str, Any] = {"records": args.records, "runs": args.runs, "pages": {}}
    with TestClient(create_app(app)) as client:
        client.cookies.set("puhui_staff", staff.token)
        client.cookies.set("puhui_citizen", citizen.token)
        pages = {
            "healthz (baseline)": "/healthz",
            "public": "/dashboard",
            "operator": "/dashboard/operator",
            "citizen": "/dashboard/me",
            "download by_province.csv": "/dashboard/tables/by_province.csv",
        }
        baseline = 0.0
        for name, path in pages.items():
            assert client.get(path).status_code == 200, path
            times = []
            for _ in range(args.runs):
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
    (OUT / "dashboard.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
