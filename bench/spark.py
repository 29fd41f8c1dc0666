"""Benchmark: the same generated day settled by the default engine and by Spark on 1 and 2 cores.

`make bench-spark` runs `python -m bench.spark --records 10000000`:

1. Generate the files once (seed 7, JSON Lines, every platform of `bench.generate`) into
   bench/out/data-<records>-jsonl.
2. In one run, each measurement in a fresh process and a fresh SQLite database:
   - `read`: the bare read of every file into Arrow (the baseline of `bench.ingest`);
   - `default`: `puhui ingest` of every file in receive order (DuckDB, chunk by chunk);
   - `spark local[1]` and `spark local[2]`: `puhui ingest --engine spark`, one job per
     platform's consecutive files, the same files in the same order.
3. For each: records/s, time per stage (summed over the jobs), and the peak resident memory
   of the whole process tree (the Python driver, Spark's JVM and its Python workers), sampled
   every 0.2 s from /proc. For the Spark runs, from Spark's event log: the bytes every task
   wrote to shuffles (per record ingested), the largest execution memory one task (one
   partition) reached, bytes spilled, and the executors' CPU time.

Results are written to bench/out/spark-<records>.json and printed as a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.ingest import OUT, ensure_data

RUNS = ("read", "default", "spark:local[1]", "spark:local[2]")


def child(data: Path, mode: str) -> dict[str, Any]:
    """One measurement, in this process."""
    from datetime import UTC, datetime

    from puhui.adapters.batch.reader import read_chunks
    from puhui.bootstrap import bootstrap
    from puhui.config import Settings
    from puhui.service import admin, ingest

    files = json.loads((data / "files.json").read_text())
    paths = [(platform, data / name) for platform, name in files]
    records = 0
    stages: dict[str, float] = {}
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    if mode == "read":
        for _, path in paths:
            for chunk in read_chunks(path):
                records += chunk.num_rows
        return {"records": records, "seconds": time.perf_counter() - start}
    folder = Path(tempfile.mkdtemp(prefix="puhui-bench-spark-"))
    settings = Settings(f"sqlite:///{folder / 'bench.db'}", folder / "bench.key")
    app = bootstrap(settings, clock=lambda: datetime(2026, 11, 1, tzinfo=UTC))
    admin.init(app)
    for platform in sorted({p for p, _ in paths}):
        admin.add_platform(app, platform)
    groups: list[tuple[str, list[Path]]] = []
    for platform, path in paths:
        if groups and groups[-1][0] == platform:
            groups[-1][1].append(path)
        else:
            groups.append((platform, [path]))
    session = None
    start = time.perf_counter()
    if mode.startswith("spark:"):
        from puhui.adapters.spark import job
        from puhui.service.spark_ingest import SparkOptions, ingest_on_spark

        # Spark's event log, read back below for what tasks shuffled and held.
        events = folder / "events"
        events.mkdir()
        os.environ["PYSPARK_SUBMIT_ARGS"] = (
            "--conf spark.eventLog.enabled=true --conf spark.eventLog.compress=false "
            f"--conf spark.eventLog.dir=file://{events} pyspark-shell"
        )
        session = job.session(mode.split(":", 1)[1], 8)
        stages["spark session"] = time.perf_counter() - start
    for n, (platform, group) in enumerate(groups):
        with ingest.receipts_csv(folder / f"receipts-{n:02d}-{platform}.csv") as sink:
            if session is None:
                report = ingest.ingest_files(app, platform, group, sink=sink)
            else:
                options = SparkOptions(work_dir=str(folder / "spark"), session=session)
                report = ingest_on_spark(app, platform, group, sink, options=options)
        records += report.records
        for stage, seconds in report.seconds.items():
            stages[stage] = stages.get(stage, 0.0) + seconds
        for status, n in report.by_status.items():
            statuses[status] = statuses.get(status, 0) + n
    seconds = time.perf_counter() - start
    result = {"records": records, "seconds": seconds, "stages": stages, "statuses": statuses}
    if session is not None:
        session.stop()
        result["tasks"] = _task_metrics(folder / "events")
    app.close()
    return result


def _task_metrics(events: Path) -> dict[str, int]:
    """Totals over every task of Spark's event log: bytes written to shuffles, the largest
    execution memory of one task, bytes spilled to disk, executor CPU time (ms)."""
    totals = {"shuffle_bytes": 0, "peak_task_bytes": 0, "spilled_bytes": 0, "cpu_ms": 0, "n": 0}
    for log in events.rglob("events_*"):
        with log.open(encoding="utf-8") as f:
            for line in f:
                if '"SparkListenerTaskEnd"' not in line:
                    continue
                metrics = json.loads(line).get("Task Metrics") or {}
                shuffle = metrics.get("Shuffle Write Metrics") or {}
                totals["shuffle_bytes"] += shuffle.get("Shuffle Bytes Written", 0)
                totals["peak_task_bytes"] = max(
                    totals["peak_task_bytes"], metrics.get("Peak Execution Memory", 0)
                )
                totals["spilled_bytes"] += metrics.get("Disk Bytes Spilled", 0)
                totals["cpu_ms"] += metrics.get("Executor CPU Time", 0) // 1_000_000
                totals["n"] += 1
    return totals


def _tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent, pages = int(fields[1]), int(fields[21])
        children.setdefault(parent, []).append(int(entry))
        rss[int(entry)] = pages * os.sysconf("SC_PAGE_SIZE")
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo += children.get(p, [])
    return total


def _spawn(data: Path, mode: str) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.spark", "--child", str(data), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).parent.parent,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode:
        raise SystemExit(f"{mode} failed ({process.returncode})")
    return {**json.loads(out.strip().splitlines()[-1]), "peak_bytes": peak}


def report(results: dict[str, Any]) -> str:
    """The results as a Markdown table."""
    base = results["read"]["records"] / results["read"]["seconds"]
    default = (
        results["default"]["records"] / results["default"]["seconds"]
        if "default" in results
        else None
    )
    lines = [
        "| run | seconds | records/s | × read | × default engine | peak memory |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, run in results.items():
        rate = run["records"] / run["seconds"]
        lines.append(
            f"| {mode} | {run['seconds']:.1f} | {rate:,.0f} | {rate / base:.3f} | "
            f"{f'{rate / default:.2f}' if default else '–'} | "
            f"{run['peak_bytes'] / 2**20:,.0f} MiB |"
        )
    one, two = results.get("spark:local[1]"), results.get("spark:local[2]")
    if one and two:
        lines.append("")
        lines.append(f"Scaling from 1 to 2 cores: ×{one['seconds'] / two['seconds']:.2f}")
    for mode, run in results.items():
        if "tasks" in run:
            t = run["tasks"]
            lines.append(
                f"- {mode}: {t['n']:,} tasks, {t['shuffle_bytes'] / run['records']:,.0f} bytes "
                f"shuffled per record, largest task {t['peak_task_bytes'] / 2**20:,.0f} MiB of "
                f"execution memory, {t['spilled_bytes'] / 2**20:,.0f} MiB spilled, executors' "
                f"CPU {t['cpu_ms'] / 1000:,.0f} s"
            )
    for mode, run in results.items():
        if "stages" in run:
            stages = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(run["stages"].items()))
            lines.append(f"- {mode}: {stages}")
    return "\n".join(lines)


def main() -> None:
    """Generate, measure, report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--runs", nargs="*", default=list(RUNS), choices=RUNS)
    parser.add_argument("--child", nargs=2, metavar=("DATA", "MODE"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1])))
        return
    data = ensure_data(args.records)
    results: dict[str, Any] = {}
    target = OUT / f"spark-{args.records}.json"
    for mode in args.runs:
        results[mode] = _spawn(data, mode)
        run = results[mode]
        print(f"{mode}: {run['records']} records in {run['seconds']:.1f} s", flush=True)
        target.write_text(json.dumps(results, indent=2))
    print(report(results))


if __name__ == "__main__":
    main()
