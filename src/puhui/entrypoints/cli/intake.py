"""A platform's records in and its receipts out: `puhui ingest` reads, checks, quantifies,
deduplicates and credits a platform's files (with a progress bar on a terminal) and prints
what became of them; `puhui receipts` exports every stored receipt of a platform as CSV, with
when each held record was decided."""

from __future__ import annotations

import csv
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import pyarrow as pa
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from puhui.bootstrap import App
from puhui.domain.errors import InputError
from puhui.entrypoints.cli.common import Db, KeyFile, application, out
from puhui.service import ingest as ingest_service
from puhui.service import queries


class Engine(StrEnum):
    """Where an ingest prepares and settles its records."""

    default = "default"
    spark = "spark"


def ingest(
    files: Annotated[
        list[str],
        typer.Argument(
            help="JSON Lines, CSV or Parquet files; with --engine spark also URIs its "
            "executors read (hdfs://, s3://, file://), whose file name may be a pattern "
            "(part-*.jsonl: the matching files, in name order).",
            show_default=False,
        ),
    ],
    platform: Annotated[str, typer.Option("--platform", help="Submitting platform's code.")],
    receipts: Annotated[
        Path | None, typer.Option("--receipts", help="Write one receipt per record to this CSV.")
    ] = None,
    engine: Annotated[
        Engine,
        typer.Option(
            "--engine",
            help="default: DuckDB in this process, chunk by chunk. spark: Apache Spark "
            "(pip install 'puhui[spark]', Java 17), the same receipts and ledger.",
        ),
    ] = Engine.default,
    spark_master: Annotated[
        str | None,
        typer.Option(
            "--spark-master",
            help="Spark master URL (local[2], spark://host:7077, yarn); default: the one "
            "spark-submit set, else local[*].",
        ),
    ] = None,
    spark_partitions: Annotated[
        int,
        typer.Option("--spark-partitions", min=1, help="Shuffle partitions of settlement."),
    ] = 8,
    spark_dir: Annotated[
        str | None,
        typer.Option(
            "--spark-dir",
            help="Where the claims store and staged jobs live (a path or URI every executor "
            "reaches); default: PUHUI_SPARK_DIR, else beside the database.",
        ),
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Read, check, quantify, deduplicate and credit a platform's files."""
    with (
        application(db, key_file) as a,
        ingest_service.receipts_csv(receipts) as sink,
        _progress(files) as step,
    ):
        if engine is Engine.spark:
            report = _on_spark(
                a, platform, files, sink, step, spark_master, spark_partitions, spark_dir
            )
        else:
            paths = [Path(f) for f in files]
            report = ingest_service.ingest_files(a, platform, paths, sink=sink, progress=step)
    _print_report(report)


def _on_spark(
    app: App,
    platform: str,
    files: list[str],
    sink: Callable[[pa.Table], None] | None,
    step: Callable[[int], None] | None,
    master: str | None,
    partitions: int,
    work_dir: str | None,
) -> ingest_service.IngestReport:
    try:
        from puhui.service import spark_ingest
    except ImportError as error:
        raise InputError(
            "--engine spark needs PySpark: pip install 'puhui[spark]' (and a Java 17 runtime)"
        ) from error
    options = spark_ingest.SparkOptions(master, work_dir, partitions)
    return spark_ingest.ingest_on_spark(app, platform, files, sink, step, options)


@contextmanager
def _progress(files: list[str]) -> Iterator[Callable[[int], None] | None]:
    if not out.is_terminal:
        yield None
        return
    total = sum(_count_records(Path(p)) for p in files)
    columns = (
        TextColumn("ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("records"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=out, transient=True) as bar:
        task = bar.add_task("ingest", total=total or None)
        yield lambda n: bar.advance(task, n)


def _count_records(path: Path) -> int:
    """Records in a file, for the progress bar (lines for text files, metadata for Parquet)."""
    if not path.is_file():
        return 0
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    with path.open("rb") as f:
        while block := f.read(1 << 24):
            lines += block.count(b"\n")
    return max(lines - (path.suffix.lower() == ".csv"), 0)


def _print_report(report: ingest_service.IngestReport) -> None:
    table = Table("status", "records", title=f"{report.records} records")
    for status in ("credited", "duplicate", "rejected"):
        table.add_row(status, str(report.by_status.get(status, 0)))
    if report.by_status.get("held"):
        table.add_row("held", str(report.by_status["held"]))
    out.print(table)
    if report.by_reason:
        reasons = Table("reason", "records")
        for reason, count in report.by_reason.most_common():
            reasons.add_row(reason, str(count))
        out.print(reasons)
    out.print(
        f"credited {report.credited_g:,} g CO2e ({report.credited_g / 1_000_000:.3f} t) "
        f"in {report.transfers:,} ledger transfers"
    )
    if report.replays:
        out.print(
            f"{report.replays:,} records were received before: their receipts are returned "
            "again and nothing is credited twice"
        )


def receipts(
    platform: Annotated[str, typer.Option("--platform", help="Platform code.")],
    out_file: Annotated[
        Path | None, typer.Option("--out", help="CSV file (default: stdout).")
    ] = None,
    db: Db = None,
    key_file: KeyFile = None,
) -> None:
    """Export every stored receipt of a platform as CSV (`decided_at`: when a held record was
    decided, empty otherwise)."""
    fields = (
        "platform",
        "record_id",
        "status",
        "reason",
        "reduction_g",
        "methodology",
        "detail",
        "decided_at",
    )
    with application(db, key_file) as a:
        target = out_file.open("w", newline="", encoding="utf-8") if out_file else sys.stdout
        try:
            writer = csv.DictWriter(target, fieldnames=fields)
            writer.writeheader()
            for row in queries.receipts(a, platform):
                writer.writerow(row)
        finally:
            if out_file:
                target.close()
