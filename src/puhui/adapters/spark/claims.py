"""The claims store: the stored records Spark settles against, in Parquet, kept in step with
the database.

Settlement on Spark reads every stored record a new one could meet (its replays, the claims of
the same evidence or of overlapping trips, the usage under the caps) where Spark reads
natively: a Parquet dataset under `<work dir>/claims`, one file per export, in seq order. Its
manifest (`manifest.json`) names the database it copies (by URL without password and the
fingerprint of its subject key), the last seq it holds and the number of erasures made when
it was written.

Before each job, `sync` brings it in step: the records stored since its last seq are appended
as a new file; if an erasure was made since, or the manifest names another database, the
store is written again from scratch, so that nothing an erasure removed from the database
survives here. The database stays the record: the store can be deleted at any time and is
rebuilt on the next job.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
from pyarrow import fs

from puhui.adapters.sql.intake import STORED_RECORDS
from puhui.service.ports import IntakeStore

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

EXPORT_ROWS = 200_000


@dataclass(frozen=True)
class Mark:
    """Where the store stands: the database it copies, its last seq, the erasures made."""

    database: str
    last_seq: int
    erasures: int


class ClaimsStore:
    """A Parquet copy of the stored records under a folder (a path or a URI: `file://`,
    `hdfs://`, `s3://`, … that both this process and Spark's executors can reach)."""

    def __init__(self, uri: str) -> None:
        self.uri = uri.rstrip("/") if "://" in uri else _local(uri)
        self.fs, self.path = filesystem(self.uri)

    @property
    def folder(self) -> str:
        """The folder of the Parquet files, as Spark is given it."""
        return f"{self.uri}/claims"

    def mark(self) -> Mark | None:
        """What the manifest says, or None when there is no store yet."""
        try:
            with self.fs.open_input_stream(f"{self.path}/claims/manifest.json") as f:
                found = json.loads(f.read())
        except (FileNotFoundError, OSError, ValueError):
            return None
        return Mark(found["database"], int(found["last_seq"]), int(found["erasures"]))

    def sync(
        self,
        database: str,
        store: IntakeStore,
        progress: Callable[[int], None] | None = None,
    ) -> Mark:
        """Bring the store in step with the database `store` reads (`database`: its name), in
        that store's transaction; returns the new mark."""
        last_seq, erasures = store.claims_mark()
        mark = self.mark()
        if mark is None or mark.database != database or mark.erasures != erasures:
            self.fs.delete_dir_contents(f"{self.path}/claims", missing_dir_ok=True)
            self.fs.create_dir(f"{self.path}/claims")
            after = 0
        else:
            after = mark.last_seq
            # A part written by a sync that stopped before its manifest: its records are
            # exported again below.
            for info in self.fs.get_file_info(fs.FileSelector(f"{self.path}/claims")):
                name = info.base_name
                if name.startswith("part-") and int(name.split("-")[1]) > after:
                    self.fs.delete_file(info.path)
        if last_seq > after:
            name = f"{self.path}/claims/part-{after + 1:012d}-{uuid.uuid4().hex[:8]}.parquet"
            with self.fs.open_output_stream(name) as out:
                writer = pq.ParquetWriter(out, STORED_RECORDS)
                for part in store.stored_after(after, last_seq, EXPORT_ROWS):
                    writer.write_table(part)
                    if progress is not None:
                        progress(part.num_rows)
                writer.close()
        new = Mark(database, last_seq, erasures)
        with self.fs.open_output_stream(f"{self.path}/claims/manifest.json") as f:
            f.write(
                json.dumps(
                    {"database": new.database, "last_seq": new.last_seq, "erasures": erasures}
                ).encode()
            )
        return new

    def frame(self, spark: SparkSession) -> DataFrame:
        """The stored records as a Spark DataFrame (STORED_RECORDS)."""
        from pyspark.sql.pandas.types import from_arrow_schema

        schema = from_arrow_schema(STORED_RECORDS)
        parts = [
            info
            for info in self.fs.get_file_info(fs.FileSelector(f"{self.path}/claims"))
            if info.base_name.endswith(".parquet")
        ]
        if not parts:
            return spark.createDataFrame([], schema)
        return spark.read.schema(schema).parquet(f"{self.folder}/*.parquet")


def filesystem(uri: str) -> tuple[fs.FileSystem, str]:
    """The file system of a file or folder given as a path or a URI, and its path on it."""
    found, path = fs.FileSystem.from_uri(arrow_uri(uri) if "://" in uri else _local(uri))
    return found, str(path)


def arrow_uri(uri: str) -> str:
    """A URI as `pyarrow.fs` reads it: Hadoop's names of the S3 connector (`s3a://`,
    `s3n://`, which Spark reads) are the same objects as `s3://`."""
    for hadoop in ("s3a://", "s3n://"):
        if uri.startswith(hadoop):
            return "s3://" + uri.removeprefix(hadoop)
    return uri


def _local(path: str) -> str:
    return str(Path(path).resolve())
