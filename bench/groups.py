"""Benchmark: one API group settled in process, without HTTP: the floor of the API's throughput.

    python -m bench.groups [--groups 30] [--sqlite-only]

Receive order is one queue: every group of submissions takes the receive-order counter until it
commits, so groups settle one at a time whatever the number of server processes, and the API
can accept at most (submissions per group) / (seconds per group) requests a second. This
measures the seconds per group with nothing else on the machine's cores: the same call the
server's settlement thread makes (`ingest.ingest_records` on a warm pipeline, with the group's
nonces), on an SQLite file and on a durable PostgreSQL cluster, for groups the size the API
benchmark sees (15 single-record submissions; 16 submissions of 100 records), each record new
(the records of `bench.api`). Reports milliseconds per group, the time per stage,
and the requests per second that bound implies.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

OUT = Path(__file__).parent / "out"
SHAPES = {"single": (15, 1), "batch 100": (16, 100)}


def _record(n: int) -> dict[str, Any]:
    """The records `bench.api` sends: a paperless service of a new citizen."""
    return {
        "platform": "bench",
        "record_id": f"B{n:012d}",
        "subject": f"1{30_000_000_00 + n:010d}",
        "scene": "paperless",
        "region": "110000",
        "start": "2026-10-02T10:00:00+08:00",
        "quantity": 1,
    }


def measure(url: str, groups: int) -> dict[str, Any]:
    """Seconds per group, and per stage, for each shape."""
    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.service import admin, ingest

    app = bootstrap(
        Settings(url, Path(tempfile.mkdtemp()) / "bench.key"),
        clock=lambda: datetime(2026, 11, 1, tzinfo=UTC),
    )
    admin.init(app)
    admin.add_platform(app, "bench")
    pipeline = ingest.Pipeline(app)
    at = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp() * 1000)
    n = 0
    results: dict[str, Any] = {}
    for shape, (submissions, size) in SHAPES.items():
        seconds: list[float] = []
        stages: dict[str, float] = {}
        for g in range(groups + 2):
            records = [_record(n + i) for i in range(submissions * size)]
            n += len(records)
            nonces = [("pk_" + "0" * 24, secrets.token_hex(16), at) for _ in range(submissions)]
            started = time.perf_counter()
            report, _ = ingest.ingest_records(
                app, "bench", records, pipeline=pipeline, nonces=nonces
            )
            if g >= 2:  # the first groups warm the pipeline up
                seconds.append(time.perf_counter() - started)
                for stage, s in report.seconds.items():
                    stages[stage] = stages.get(stage, 0.0) + s
        seconds.sort()
        median = seconds[len(seconds) // 2]
        results[shape] = {
            "submissions": submissions,
            "records": submissions * size,
            "median_ms": median * 1000,
            "stages_ms": {k: v / len(seconds) * 1000 for k, v in stages.items()},
            "requests_per_s_bound": submissions / median,
        }
    pipeline.close()
    app.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--groups", type=int, default=30)
    parser.add_argument("--sqlite-only", action="store_true")
    args = parser.parse_args()
    results = {"sqlite": measure(f"sqlite:///{tempfile.mkdtemp()}/bench.db", args.groups)}
    if not args.sqlite_only:
        sys.path.insert(0, str(Path(__file__).parent.parent))
        from tests.pgcluster import DURABLE, PgCluster

        with PgCluster(settings=DURABLE) as cluster:
            results["postgresql"] = measure(cluster.create_database("bench"), args.groups)
    OUT.mkdir(exist_ok=True)
    (OUT / "groups.json").write_text(json.dumps(results, indent=2))
    for database, shapes in results.items():
        for shape, r in shapes.items():
            stages = ", ".join(
                f"{k} {v:.1f}" for k, v in sorted(r["stages_ms"].items(), key=lambda kv: -kv[1])
            )
            print(
                f"{database:10s} {shape:9s} {r['submissions']:3d} submissions, "
                f"{r['records']:5d} records: {r['median_ms']:7.1f} ms a group "
                f"→ at most {r['requests_per_s_bound']:7.1f} requests/s; {stages}"
            )


if __name__ == "__main__":
    main()
