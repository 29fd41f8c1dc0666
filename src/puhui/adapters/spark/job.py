"""The Spark job of an ingest: read and prepare the files on executors, settle them against the
claims store, and stage the result in Parquet for the driver to post.

Reading and preparing a record needs nothing but the record, the methodology catalogue and the
subject key (both sent with the task): each file is read by one task, chunk by chunk, by the same
reader and preparation the default engine runs (`adapters.batch`), so a hostile line is
answered with the same reason whichever engine met it. Settlement is where the records meet
each other and the stored history: it runs as Spark SQL (`adapters.spark.settle`), shuffled by
the dedup keys.

The job writes two Parquet datasets under its work directory: `prepared` (every record, in
receive order `seq`) and `settled` (every record's receipt, ordered by `seq`). Nothing in the
database changes here: the driver posts `settled` in one transaction (`service.spark_ingest`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa

from puhui.adapters.batch.prepared import PREPARED
from puhui.adapters.spark import settle as statements

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from puhui.domain.methodology import Catalogue

# What each task adds to a prepared record: the file it came from (its place in the ingest's
# order), the reader's chunk it was read in (the unit the driver posts), and, on a row of its
# own, why a file could not be read at all.
PREPARED_ROWS = pa.schema(
    [
        ("file", pa.int32()),
        ("chunk", pa.int32()),
        ("error", pa.string()),
        *((f.name, f.type) for f in PREPARED),
    ]
)


@dataclass(frozen=True)
class Source:
    """A file of the ingest: its place, where it is (a path or a URI Spark's executors can
    read), and when it was received (epoch ms)."""

    file: int
    uri: str
    received_ms: int


def session(master: str | None, partitions: int, app_name: str = "puhui ingest") -> SparkSession:
    """The Spark session of an ingest: `master` (`local[*]`, `spark://…`, `yarn`, …), or, when
    none is given, the one `spark-submit` configured, else `local[*]`."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    launched_by_submit = "PYSPARK_GATEWAY_PORT" in os.environ
    if master is not None or not launched_by_submit:
        builder = builder.master(master or "local[*]")
    local = (master or "local").startswith("local") and not launched_by_submit
    for key, value in {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": str(partitions),
        "spark.sql.adaptive.enabled": "true",
        "spark.sql.adaptive.skewJoin.enabled": "true",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.execution.arrow.maxRecordsPerBatch": "20000",
    }.items():
        builder = builder.config(key, value)
    if local:
        # Executors are threads of this process's JVM; their Python workers are this Python
        # (which the context reads from the environment, not from its configuration).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        log = Path(__file__).with_name("log4j2.properties")
        builder = builder.config(
            "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{log}"
        )
        builder = builder.config("spark.ui.enabled", "false")
        # The executors' tasks run in this JVM: its heap is theirs.
        builder = builder.config(
            "spark.driver.memory", os.environ.get("PUHUI_SPARK_DRIVER_MEMORY", "4g")
        )
        builder = builder.config("spark.ui.showConsoleProgress", "false")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def prepare(
    spark: SparkSession,
    sources: Sequence[Source],
    catalogue: Catalogue,
    secret: bytes,
    platform: str,
    chunk_size: int,
) -> DataFrame:
    """Read and prepare every file, one task a file, in chunks of `chunk_size` records:
    PREPARED_ROWS, in no particular order."""
    from pyspark.sql.pandas.types import from_arrow_schema

    rows = [(s.file, s.uri, s.received_ms) for s in sources]
    files = spark.createDataFrame(
        spark.sparkContext.parallelize(rows, max(1, len(rows))),
        "file int, uri string, received_ms long",
    )

    def tasks(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for file, uri, received_ms in zip(
                batch.column("file").to_pylist(),
                batch.column("uri").to_pylist(),
                batch.column("received_ms").to_pylist(),
                strict=True,
            ):
                yield from prepare_file(
                    file, uri, received_ms, catalogue, secret, platform, chunk_size
                )

    return files.mapInArrow(tasks, from_arrow_schema(PREPARED_ROWS))


def prepare_file(
    file: int,
    uri: str,
    received_ms: int,
    catalogue: Catalogue,
    secret: bytes,
    platform: str,
    chunk_size: int,
) -> Iterator[pa.RecordBatch]:
    """One task: a file read and prepared chunk by chunk, as the default engine does."""
    from puhui.adapters.batch.prepare import ARROW_PREPARE, Preparer
    from puhui.adapters.batch.reader import read_chunks
    from puhui.adapters.batch.sequential import SMALL_CHUNK, SMALL_PREPARE
    from puhui.domain.errors import InputError

    preparer = Preparer(catalogue, secret, platform, min(SMALL_CHUNK, SMALL_PREPARE), ARROW_PREPARE)
    try:
        with _local_copy(uri) as path:
            for chunk, raw in enumerate(read_chunks(path, chunk_size)):
                prepared = preparer.prepare(raw, received_ms)
                n = prepared.num_rows
                table = pa.Table.from_arrays(
                    [
                        pa.array([file] * n, pa.int32()),
                        pa.array([chunk] * n, pa.int32()),
                        pa.nulls(n, pa.string()),
                        *prepared.columns,
                    ],
                    schema=PREPARED_ROWS,
                )
                yield from table.to_batches()
    except InputError as error:
        yield pa.RecordBatch.from_pylist(
            [{"file": file, "chunk": -1, "error": str(error)}], schema=PREPARED_ROWS
        )
    finally:
        preparer.close()


@contextmanager
def _local_copy(uri: str) -> Iterator[Path]:
    """A local path of a file: itself, or a copy of a remote one (HDFS, S3, … through
    `pyarrow.fs`) under the task's temporary directory, kept only while it is read."""
    scheme = urlparse(uri).scheme
    if scheme in ("", "file"):
        yield Path(urlparse(uri).path if scheme else uri)
        return
    from puhui.adapters.spark.claims import filesystem

    remote, path = filesystem(uri)
    folder = tempfile.mkdtemp(prefix="puhui-")
    try:
        local = Path(folder) / Path(path).name
        with remote.open_input_stream(path) as src, local.open("wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 22)
        yield local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def number(prepared: DataFrame, bases: Sequence[int], first: int) -> DataFrame:
    """Give every record its receive order: `first` + the records of earlier files + its row
    in its file - 1 (rows are numbered from 1 in each file, in order)."""
    from pyspark.sql import functions as F

    offsets = F.array(*(F.lit(b) for b in bases))
    return prepared.withColumn(
        "seq",
        F.lit(first) + F.element_at(offsets, F.col("file") + 1) + F.col("row").cast("long") - 1,
    )


def settle(
    spark: SparkSession,
    prepared: DataFrame,
    stored: DataFrame,
    platform_id: int,
) -> DataFrame:
    """Every record's receipt (`adapters.spark.settle`), against the stored records `stored`
    (the claims store: every platform's)."""
    from pyspark import StorageLevel

    stored.createOrReplaceTempView("stored_all")
    prepared.createOrReplaceTempView("prepared")
    spark.sql(statements.JOB_CITIZENS_SQL).createOrReplaceTempView("job_citizens")
    for view, sql in statements.history_sql(platform_id).items():
        spark.sql(sql).createOrReplaceTempView(view)
    classified = spark.sql(statements.CLASSIFY_SQL).persist(StorageLevel.MEMORY_AND_DISK)
    classified.createOrReplaceTempView("classified")
    new_final = spark.sql(statements.NEW_SQL).persist(StorageLevel.MEMORY_AND_DISK)
    new_final.createOrReplaceTempView("new_final")
    return new_final.unionByName(spark.sql(statements.OTHERS_SQL))


def stored_usage_of(spark: SparkSession, keys: Sequence[tuple[Any, Any, Any]]) -> list[Any]:
    """The stored usage rows (pseudonym, scene, day, g, n) of these (pseudonym, scene, month)."""
    if not keys:
        return []
    wanted = spark.createDataFrame(list(keys), "pseudonym string, scene string, month date")
    wanted.createOrReplaceTempView("wanted_months")
    return spark.sql(
        "select u.pseudonym, u.scene, u.day, u.g, u.n from stored_usage u join wanted_months w "
        "on u.pseudonym = w.pseudonym and u.scene = w.scene and trunc(u.day, 'MM') = w.month"
    ).collect()
