"""Ingest on Apache Spark: the same receipts and the same ledger as `service.ingest`, with the
records' preparation and settlement spread over a cluster's executors.

1. **Claims store in step.** The Parquet copy of the stored records (`adapters.spark.claims`)
   takes what the database stored since it was last written.
2. **Read and prepare** every file on the executors, one task a file (`adapters.spark.job`);
   the records are numbered in receive order (files in the order given, rows in each file)
   after the last stored record.
3. **Settle** on Spark against the claims store: every record's receipt, staged in Parquet.
4. **Post** on the driver, in one transaction of the database: the records are numbered for
   good (`allocate`), stored chunk by chunk as the default engine stores them (the reader's
   chunks: same subjects registered in the same order, same transfers), with their credits
   and tallies. If the database stored any record, or made an erasure, after step 1, the
   settlement is stale: the transaction is rolled back and steps 1 to 4 run again.

A job that fails anywhere leaves nothing posted, and can be run again. Receipts are written
once the transaction has committed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyarrow.fs import FileSelector, FileType
from sqlalchemy.engine import make_url

from puhui.adapters.batch.prepare import epoch_ms
from puhui.adapters.batch.reader import DEFAULT_CHUNK
from puhui.adapters.spark import job
from puhui.adapters.spark.claims import ClaimsStore, Mark, filesystem
from puhui.adapters.spark.settle import grams_by_the_statement
from puhui.bootstrap import App
from puhui.domain.errors import BusyError, InputError, PuhuiError
from puhui.domain.reasons import Reason
from puhui.domain.settlement import Candidate, Caps, Role, Usage
from puhui.service import ledger
from puhui.service.ingest import (
    IngestReport,
    Posting,
    ReceiptSink,
    post_chunk,
    receipts_of,
    usage_around,
)
from puhui.service.pipeline import Pipeline

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# Settlement is run again at most this many times when the database moved on meanwhile.
ATTEMPTS = 3


@dataclass(frozen=True)
class SparkOptions:
    """How an ingest runs on Spark.

    Attributes:
        master: Spark master URL (`local[2]`, `spark://host:7077`, `yarn`); None: the one
            `spark-submit` set, else `local[*]`.
        work_dir: where the claims store and the job's staged Parquet live (a path or a URI
            the executors reach); None: `Settings.spark_dir()`.
        partitions: shuffle partitions of settlement (`spark.sql.shuffle.partitions`).
        session: a Spark session to run on (kept open); None: one is started and stopped.
        chunk_size: records per chunk read, stored and posted (as `ingest_files` reads them).
    """

    master: str | None = None
    work_dir: str | None = None
    partitions: int = 8
    session: SparkSession | None = None
    chunk_size: int = DEFAULT_CHUNK


class _Stale(Exception):
    """The database stored records or made an erasure since the claims store was synced."""


def ingest_on_spark(
    app: App,
    platform: str,
    sources: Sequence[str | Path],
    sink: ReceiptSink | None = None,
    progress: Callable[[int], None] | None = None,
    options: SparkOptions | None = None,
) -> IngestReport:
    """Ingest files of one member platform (paths or URIs, in receive order; a URI's file
    name may be a pattern, `expand`) on Spark.

    Raises:
        InputError: a file is missing or cannot be read at all (nothing is posted).
        NotFoundError: the platform is not registered.
        BusyError: the database kept storing records while the job settled.
    """
    options = options or SparkOptions()
    pipeline = Pipeline(app)
    try:
        pipeline.check_ready()
        with app.intake() as uow:
            platform_id = pipeline.platform_id(uow.store, platform)
        files = [
            _source(i, uri, app)
            for i, uri in enumerate(u for given in sources for u in expand(str(given)))
        ]
        with _spark_errors():
            spark = options.session or job.session(options.master, options.partitions)
        try:
            spark.conf.set("spark.sql.shuffle.partitions", str(options.partitions))
            work = options.work_dir or app.settings.spark_dir()
            run = _Run(app, spark, pipeline, platform, platform_id, files, work, options.chunk_size)
            try:
                with _spark_errors():
                    return run.ingest(sink, progress)
            finally:
                run.clean()
        finally:
            if options.session is None:
                spark.stop()
    finally:
        pipeline.close()
        ledger.seal_quietly(app)


class SparkJobError(PuhuiError):
    """Spark could not run the job (no Java, no cluster, an executor lost for good); nothing
    was posted."""


@contextmanager
def _spark_errors() -> Iterator[None]:
    """Spark's own failures as a `SparkJobError` naming their class and first line (never the
    data: a task's traceback stays in Spark's log)."""
    from py4j.protocol import Py4JError
    from pyspark.errors import PySparkException

    try:
        yield
    except (PySparkException, Py4JError) as error:
        first = (str(error).strip().splitlines() or [""])[0][:200]
        raise SparkJobError(f"the Spark job failed ({type(error).__name__}): {first}") from None


@dataclass
class _File:
    source: job.Source
    name: str


def expand(given: str) -> list[str]:
    """The files a source names: itself, or, for a URI whose last part is a pattern
    (`hdfs://nn/intake/amap/2026-10-01/part-*.jsonl`: `*`, `?`, `[…]`, as the shell matches
    local paths), the files of that folder it matches, in name order.

    Raises:
        InputError: the folder does not exist, or no file in it matches.
    """
    scheme = urlparse(given).scheme
    folder, _, pattern = given.rpartition("/")
    if not scheme or not any(c in pattern for c in "*?["):
        return [given]
    try:
        files, path = filesystem(folder)
        listed = files.get_file_info(FileSelector(path))
    except FileNotFoundError:
        raise InputError(f"{folder}: no such folder") from None
    except (OSError, ValueError) as error:  # no client for its scheme, unreachable
        raise InputError(f"{folder}: cannot be listed ({type(error).__name__})") from None
    names = sorted(
        i.base_name
        for i in listed
        if i.type == FileType.File and fnmatch.fnmatchcase(i.base_name, pattern)
    )
    if not names:
        raise InputError(f"{given}: no file matches")
    return [f"{folder}/{name}" for name in names]


def _source(i: int, given: str | Path, app: App) -> _File:
    text = str(given)
    scheme = urlparse(text).scheme
    if scheme in ("", "file"):
        path = Path(urlparse(text).path if scheme else text)
        if not path.is_file():
            raise InputError(f"{path}: no such file")
        uri, name = str(path.resolve()), path.name
    else:
        uri, name = text, Path(urlparse(text).path).name
    return _File(job.Source(i, uri, epoch_ms(app.clock())), name)


class _Run:
    """One ingest on Spark: its staged data and the steps over them."""

    def __init__(
        self,
        app: App,
        spark: SparkSession,
        pipeline: Pipeline,
        platform: str,
        platform_id: int,
        files: list[_File],
        work: str,
        chunk_size: int,
    ) -> None:
        self.app, self.spark, self.pipeline = app, spark, pipeline
        self.platform, self.platform_id, self.files = platform, platform_id, files
        self.claims = ClaimsStore(work)
        self.job_dir = f"{self.claims.folder.rsplit('/', 1)[0]}/jobs/{uuid.uuid4().hex}"
        self.report = IngestReport()
        self.chunk_size = chunk_size
        url = make_url(app.settings.database_url).render_as_string(hide_password=True)
        key = hashlib.sha256(b"puhui claims store\0" + app.secret).hexdigest()[:16]
        self.database = f"{url} {key}"

    def ingest(
        self, sink: ReceiptSink | None, progress: Callable[[int], None] | None
    ) -> IngestReport:
        report = self.report
        with report.timed("read and prepare"):
            prepared = self._prepare()
        for _ in range(ATTEMPTS):
            with report.timed("claims store"), self.app.intake() as uow:
                mark = self.claims.sync(self.database, uow.store)
            with report.timed("settle"):
                settled_dir, overrides = self._settle(prepared, mark)
            try:
                receipts = self._post(settled_dir, mark, overrides, progress)
            except _Stale:
                continue
            with report.timed("receipts"):
                for table in receipts:
                    if sink is not None:
                        sink(table)
            return report
        raise BusyError(
            f"the database stored records during each of {ATTEMPTS} settlements of this ingest; "
            "run it again when fewer are being stored"
        )

    def clean(self) -> None:
        """Remove the job's staged data."""
        files, path = filesystem(self.job_dir)
        with suppress(FileNotFoundError):
            files.delete_dir(path)

    # Steps ---------------------------------------------------------------------------------

    def _prepare(self) -> DataFrame:
        """Read and prepare every file; stage the result; refuse the ingest on a file that
        cannot be read at all."""
        from pyspark.sql import functions as F

        rows = job.prepare(
            self.spark,
            [f.source for f in self.files],
            self.app.catalogue,
            self.app.secret,
            self.platform,
            self.chunk_size,
        )
        # A folder per chunk of each file, as the driver posts them.
        rows.write.partitionBy("file", "chunk").parquet(f"{self.job_dir}/prepared")
        staged = self.spark.read.parquet(f"{self.job_dir}/prepared")
        failed = staged.where("error is not null").orderBy("file").select("error").head()
        if failed is not None:
            raise InputError(failed.error)
        staged = staged.where("error is null").drop("error")
        self.sizes: dict[int, int] = {f.source.file: 0 for f in self.files}
        self.chunks: dict[int, int] = {f.source.file: 0 for f in self.files}
        for file, n, last, chunks in (
            staged.groupBy("file").agg(F.count("*"), F.max("row"), F.max("chunk") + 1).collect()
        ):
            if n != last:
                raise InputError(f"{self.files[file].name}: its rows are not numbered 1 to {n}")
            self.sizes[file], self.chunks[file] = n, chunks
        self.pipeline.preparer(self.platform).quantify(
            (r.scene, r.region, r.material, r.day_cn)
            for r in staged.where("quant_key is not null")
            .select("scene", "region", "material", "day_cn")
            .distinct()
            .collect()
        )
        return staged

    def _settle(self, prepared: DataFrame, mark: Mark) -> tuple[str, dict[int, int]]:
        """Settle every record against the claims store; stage the receipts in seq order and
        return where, with the grams of records credited by the statement (`mixed_caps`)."""
        bases, total = [], 0
        for f in self.files:
            bases.append(total)
            total += self.sizes[f.source.file]
        self.total, self.base = total, mark.last_seq + 1
        numbered = job.number(prepared, bases, self.base)
        settled = job.settle(self.spark, numbered, self.claims.frame(self.spark), self.platform_id)
        folder = f"{self.job_dir}/settled-{uuid.uuid4().hex[:8]}"
        from pyspark.sql.functions import broadcast

        # A folder per chunk of each file, its receipts in seq order.
        settled.repartition("file", "chunk").sortWithinPartitions("seq").write.partitionBy(
            "file", "chunk"
        ).parquet(folder)
        credited_by_statement = (
            self.spark.read.parquet(folder)
            .where(f"mixed_caps and role = '{Role.NEW}' and status = 'credited'")
            .select("seq")
        )
        # Rare: most jobs have none, and read no prepared record back for them.
        if credited_by_statement.isEmpty():
            return folder, {}
        mixed = [
            Candidate(
                seq=r.seq,
                key=None,
                digest="",
                citizen=r.pseudonym,
                scene=r.scene,
                day=r.day_cn,
                computed_g=r.computed_g,
                caps=Caps(r.day_max_g, r.day_max_count, r.month_max_g, r.month_max_count),
            )
            for r in numbered.join(broadcast(credited_by_statement), "seq").collect()
        ]
        months = {(c.citizen, c.scene, c.day.replace(day=1)) for c in mixed if c.day}
        usage = {
            (u.pseudonym, u.scene, u.day): Usage(u.n, u.g)
            for u in job.stored_usage_of(self.spark, sorted(months, key=str))
        }
        return folder, grams_by_the_statement(mixed, usage)

    def _post(
        self,
        folder: str,
        mark: Mark,
        overrides: dict[int, int],
        progress: Callable[[int], None] | None,
    ) -> list[pa.Table]:
        """Post the staged receipts in one transaction; return the receipts to write."""
        report, pipeline = self.report, self.pipeline
        preparer = pipeline.preparer(self.platform)
        receipts: list[pa.Table] = []
        with report.timed("post"), self.app.intake() as uow:
            store = uow.store
            first = store.allocate("record", self.total) if self.total else 0
            if store.claims_mark() != (mark.last_seq, mark.erasures):
                raise _Stale
            shift = first - self.base
            batches: dict[int, int] = {}
            for f in self.files:
                if self.sizes[f.source.file] == 0:
                    batches[f.source.file] = self._batch(store, f)
            at = first
            for file, chunk in self._chunks(folder):
                f = self.files[file]
                if file not in batches:
                    batches[file] = self._batch(store, f)
                chunk = _numbered(_with_statement_grams(chunk, overrides), self.base, shift)
                with report.timed("lookup"):
                    subject_ids = store.subject_ids(
                        p for p in chunk.column("pseudonym").to_pylist() if p
                    )
                    chunk = _with_subject_ids(chunk, subject_ids)
                    valid = chunk.filter(chunk.column("valid"))
                    usage = usage_around(store, valid.column("subject_id").to_pylist(), valid)
                posting = Posting(
                    self.platform_id,
                    batches[file],
                    datetime.fromtimestamp(f.source.received_ms / 1000, tz=UTC),
                    at,
                )
                transfers, credited_g, chunk = post_chunk(
                    store, preparer, pipeline, chunk, posting, subject_ids, usage, report
                )
                at += chunk.num_rows
                table = receipts_of(chunk, self.platform, f.name)
                replays = pc.sum(pc.equal(chunk.column("role"), Role.REPLAY.value)).as_py()
                report.add(table, transfers, int(replays or 0), credited_g)
                if batches[file] not in report.batches:
                    report.batches.append(batches[file])
                receipts.append(table)
                if progress is not None:
                    progress(chunk.num_rows)
            with report.timed("commit"):
                uow.commit()
        pipeline.quantification_ids |= pipeline.stored_quantifications
        return receipts

    def _batch(self, store: Any, f: _File) -> int:
        received = datetime.fromtimestamp(f.source.received_ms / 1000, tz=UTC)
        return int(store.new_batch(self.platform_id, f.name, received))

    def _chunks(self, folder: str) -> Iterator[tuple[int, pa.Table]]:
        """The settled records, chunk by chunk as the reader read them, in receive order: the
        staged preparation of each chunk with its receipts."""
        files, path = filesystem(folder)
        prepared = filesystem(f"{self.job_dir}/prepared")[1]
        chunks = sorted(
            (int(file.split("=")[1]), int(chunk.split("=")[1]))
            for file, chunk in (
                i.path.rsplit("/", 2)[-2:]
                for i in files.get_file_info(FileSelector(path, recursive=True))
                if i.type == FileType.Directory and "/chunk=" in i.path
            )
        )
        for file, chunk in chunks:
            where = f"file={file}/chunk={chunk}"
            receipts = _read(files, f"{path}/{where}").sort_by("row")
            records = _read(files, f"{prepared}/{where}").sort_by("row")
            if not receipts.column("row").equals(records.column("row")):
                raise RuntimeError(f"the staged receipts of {where} are not its records'")
            kept = [n for n in records.column_names if n not in receipts.column_names]
            table = records.select(kept)
            for name in receipts.column_names:
                table = table.append_column(name, receipts.column(name))
            valid = pc.equal(pc.list_value_length(table.column("checks")), 0)
            yield file, table.append_column("valid", valid)


def _read(files: Any, folder: str) -> pa.Table:
    """The Parquet files of a folder, as one table."""
    listed = files.get_file_info(FileSelector(folder))
    parts = sorted(i.path for i in listed if i.base_name.endswith(".parquet"))
    tables = []
    for part in parts:
        with files.open_input_file(part) as handle:
            tables.append(pq.read_table(handle))
    return pa.concat_tables(tables) if tables else pa.table({})


def _with_statement_grams(chunk: pa.Table, grams: dict[int, int]) -> pa.Table:
    """The grams (and `capped`) of credited records of months with several caps, decided by
    the statement of the rules."""
    if not grams:
        return chunk
    seqs = chunk.column("seq").to_pylist()
    if not any(s in grams for s in seqs):
        return chunk
    computed = chunk.column("computed_g").to_pylist()
    reductions = [
        grams.get(s, g) for s, g in zip(seqs, chunk.column("reduction_g").to_pylist(), strict=True)
    ]
    reasons = [
        (str(Reason.CAPPED) if grams[s] < c else "") if s in grams else r
        for s, c, r in zip(seqs, computed, chunk.column("reason").to_pylist(), strict=True)
    ]
    i = chunk.schema.get_field_index("reduction_g")
    chunk = chunk.set_column(i, "reduction_g", pa.array(reductions, pa.int64()))
    i = chunk.schema.get_field_index("reason")
    return chunk.set_column(i, "reason", pa.array(reasons, pa.string()))


def _numbered(chunk: pa.Table, base: int, shift: int) -> pa.Table:
    """Move the seqs of this ingest's records (from `base` on) by `shift`: to the numbers the
    database allocated. Seqs of stored records are left as they are."""
    if shift == 0:
        return chunk
    for name in ("seq", "duplicate_of", "receipt_seq"):
        column = chunk.column(name)
        moved = pc.if_else(pc.greater_equal(column, base), pc.add(column, shift), column)
        chunk = chunk.set_column(chunk.schema.get_field_index(name), name, moved)
    return chunk


def _with_subject_ids(chunk: pa.Table, subject_ids: pa.Table) -> pa.Table:
    ids = dict(
        zip(
            subject_ids.column("pseudonym").to_pylist(),
            subject_ids.column("subject_id").to_pylist(),
            strict=True,
        )
    )
    return chunk.append_column(
        "subject_id",
        pa.array([ids.get(p) for p in chunk.column("pseudonym").to_pylist()], pa.int64()),
    )
