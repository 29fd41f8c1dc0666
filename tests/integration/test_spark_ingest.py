"""Ingest on Spark gives what the default engine gives, and what the rules give.

Three judges for each Spark ingest (`service.spark_ingest`, on a `local[2]` session):
- the default engine (`service.ingest`) on the same files into another database: the same
  receipts, byte for byte, and the same stored records, subjects, accounts, transfers and
  batches;
- the statement of the rules (`domain.intake` then `domain.settlement`, record by record, from
  an empty book);
- the generator's ground truth, for the generated files.

Data: generated multi-platform files (replays, conflicts, cross-platform duplicates, binding
caps, planted invalid records), each file split in parts over its days, ingested with several
shuffle partition counts; then hypothesis histories under tight caps that bind; a hot citizen
and a hot ref; a job that fails while posting; the database moving on during a job; erasure.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, example, given, settings
from sqlalchemy import text

from bench.generate import Truth, generate
from puhui.adapters.batch.prepare import Preparer, epoch_ms
from puhui.adapters.batch.reader import read_chunks
from puhui.adapters.batch.sequential import candidates
from puhui.adapters.spark import job
from puhui.adapters.spark import settle as spark_settle
from puhui.adapters.spark.claims import ClaimsStore, arrow_uri
from puhui.adapters.sql import tables
from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.errors import InputError
from puhui.domain.settlement import settle
from puhui.service import admin, erasure, ingest, ledger, spark_ingest
from puhui.service.spark_ingest import SparkOptions
from tests.builders import trip, write_jsonl
from tests.conftest import NOW
from tests.integration.test_settlement_renderings import CAPS, CITIZENS, histories, tight

pyspark = pytest.importorskip("pyspark")

PLATFORMS = ("amap", "bjtransit", "jingtong", "citic")
# What both engines store, compared row by row (ordered by their keys). Transfers are compared
# without the ledger commit that stamped them: the default engine commits chunk by chunk, Spark
# once for the whole job.
TRANSFERS = (
    "id, kind, debit_account_id, credit_account_id, amount, record_seq, batch_id, "
    "operation_id, reverses, created_at, expires_at"
)
TABLES = {
    "records": "seq",
    "subjects": "id",
    "accounts": "id",
    "balances": "account_id",
    "batches": "id",
    "unkeyed_rejections": "batch_id, line",
    "conflicts": "batch_id, line",
    "quantifications": "id",
    "tallies": "",
    "tally_members": "",
}


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    session = job.session("local[2]", 4)
    yield session
    session.stop()


def _app(url: str, folder: Path, platforms: Sequence[str]) -> App:
    app = bootstrap(Settings(url, folder / "subject.key"), clock=lambda: NOW)
    admin.init(app)
    for code in platforms:
        admin.add_platform(app, code)
    return app


def _split(path: Path, parts: int) -> list[Path]:
    """A file cut in `parts` files of consecutive rows (days follow each other in them)."""
    stem, suffix = path.name.split(".", 1)
    out = [path.with_name(f"{stem}-part{i + 1}.{suffix}") for i in range(parts)]
    if suffix == "parquet":
        table = pq.read_table(path)
        size = -(-table.num_rows // parts)
        for i, target in enumerate(out):
            pq.write_table(table.slice(i * size, size), target)
        return out
    lines = path.read_bytes().splitlines(keepends=True)
    header, body = (lines[:1], lines[1:]) if suffix == "csv" else ([], lines)
    size = -(-len(body) // parts)
    for i, target in enumerate(out):
        target.write_bytes(b"".join(header + body[i * size : (i + 1) * size]))
    return out


def _groups(truth: Truth, parts: int) -> list[tuple[str, list[Path]]]:
    """The truth's files in order, split, with consecutive files of one platform together."""
    groups: list[tuple[str, list[Path]]] = []
    for platform, path in truth.files:
        split = _split(path, parts) if parts > 1 else [path]
        if groups and groups[-1][0] == platform:
            groups[-1][1].extend(split)
        else:
            groups.append((platform, split))
    return groups


def _csv(tables: list[pa.Table]) -> bytes:
    out = io.BytesIO()
    for i, table in enumerate(tables):
        pa.csv.write_csv(
            table.drop_columns(["settled_now"]),
            out,
            pa.csv.WriteOptions(include_header=i == 0),
        )
    return out.getvalue()


def _stored(app: App) -> dict[str, list[tuple[Any, ...]]]:
    with app.engine.connect() as conn:
        return {
            name: [
                tuple(r)
                for r in conn.execute(
                    text(f"select * from {name} order by {order or _every_column(name)}")
                )
            ]
            for name, order in TABLES.items()
        } | {
            "transfers": [
                tuple(r)
                for r in conn.execute(text(f"select {TRANSFERS} from transfers order by id"))
            ]
        }


def _every_column(table: str) -> str:
    return ", ".join(tables.metadata.tables[table].columns.keys())


def _ingest_both(
    default: App,
    on_spark: App,
    groups: Sequence[tuple[str, Sequence[Path]]],
    options: SparkOptions,
    sources: Sequence[Sequence[Path | str]] | None = None,
) -> tuple[list[pa.Table], list[pa.Table]]:
    """Each group ingested by the default engine and on Spark (from `sources`, the same files
    named otherwise, when given)."""
    by_default: list[pa.Table] = []
    by_spark: list[pa.Table] = []
    for n, (platform, files) in enumerate(groups):
        ingest.ingest_files(default, platform, files, by_default.append)
        given = files if sources is None else sources[n]
        spark_ingest.ingest_on_spark(on_spark, platform, given, by_spark.append, options=options)
    return by_default, by_spark


def _judged(app: App, groups: Sequence[tuple[str, Sequence[Path]]]) -> list[tuple[str, str, int]]:
    """(status, reason, grams) of every record, as the statements of intake and settlement
    decide them from an empty book, record by record."""
    numbers: dict[str, int] = {}
    platform_ids: dict[str, int] = {}
    everything, seq = [], 1
    for platform, files in groups:
        preparer = Preparer(app.catalogue, app.secret, platform)
        try:
            for path in files:
                for raw in read_chunks(Path(path)):
                    prepared = preparer.prepare_by_statement(raw, epoch_ms(NOW))
                    n = prepared.num_rows
                    prepared = prepared.append_column(
                        "seq", pa.array(range(seq, seq + n), pa.int64())
                    )
                    seq += n
                    for p in prepared.column("pseudonym").to_pylist():
                        if p:
                            numbers.setdefault(p, len(numbers) + 1)
                    ids = pa.table(
                        {
                            "pseudonym": pa.array(list(numbers), pa.string()),
                            "subject_id": pa.array(list(numbers.values()), pa.int64()),
                        }
                    )
                    everything += candidates(
                        prepared, ids, platform_ids.setdefault(platform, len(platform_ids))
                    )
        finally:
            preparer.close()
    return [(str(d.status), d.reason, d.reduction_g) for d in settle(everything)]


def _decided(receipts: list[pa.Table]) -> list[tuple[str, str, int]]:
    table = pa.concat_tables(receipts)
    return list(
        zip(
            table.column("status").to_pylist(),
            table.column("reason").to_pylist(),
            table.column("reduction_g").to_pylist(),
            strict=True,
        )
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Truth, Path]:
    folder = tmp_path_factory.mktemp("world")
    truth = generate(folder, records=2_400, seed=11, platforms=PLATFORMS, received_at=NOW)
    return truth, folder


@pytest.mark.slow
@pytest.mark.parametrize(
    ("new_database", "partitions"),
    [("sqlite", 1), pytest.param("postgres", 7, marks=pytest.mark.postgres)],
    indirect=["new_database"],
)
def test_spark_gives_the_default_engines_receipts_and_ledger(
    new_database: Callable[[Path], str],
    spark: Any,
    world: tuple[Truth, Path],
    tmp_path: Path,
    partitions: int,
) -> None:
    """Generated files of four platforms, each cut in three parts, the first platform's given
    to Spark as a file:// URI pattern: the same receipts byte for byte, the same stored rows,
    what the rules and the generator's truth decide, and a sound ledger, whatever the shuffle
    partitions."""
    truth, _ = world
    groups = _groups(truth, 3)
    first = groups[0][1][0]
    pattern = f"file://{first.parent}/{first.name.replace('-part1.', '-part?.')}"
    sources: list[list[Path | str]] = [[pattern], *(list(f) for _, f in groups[1:])]
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    default = _app(new_database(tmp_path / "a"), tmp_path / "a", PLATFORMS)
    on_spark = _app(new_database(tmp_path / "b"), tmp_path / "a", PLATFORMS)
    try:
        options = SparkOptions(
            work_dir=str(tmp_path / "spark"), partitions=partitions, session=spark
        )
        by_default, by_spark = _ingest_both(default, on_spark, groups, options, sources)

        assert _csv(by_spark) == _csv(by_default)
        assert _stored(on_spark) == _stored(default)
        decided = _decided(by_spark)
        assert decided == _judged(on_spark, groups)
        expected = [(e.status, e.reasons, e.reduction_g) for e in truth.expected]
        assert [(s, frozenset(r.split(";")) - {""}, g) for s, r, g in decided] == expected
        statuses = {s for s, _, _ in decided}
        reasons = {r for _, rs, _ in decided for r in rs.split(";")}
        assert statuses == {"credited", "duplicate", "rejected"}
        assert {"duplicate_ref", "duplicate_overlap", "capped", "conflict"} <= reasons
        assert ledger.verify(on_spark) == []
    finally:
        default.close()
        on_spark.close()


@settings(
    max_examples=6,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories())
# Chengdu then Beijing on one day for one citizen: a month meeting two caps, credited by the
# statement on the driver.
@example(
    history=[
        ("amap", [trip("amap-1", subject=CITIZENS[0], region="510100", distance_km="42",
                       start="2026-10-01T08:00:00+08:00", end="2026-10-01T08:30:00+08:00"),
                  trip("amap-2", subject=CITIZENS[0], region="110000", distance_km="5",
                       start="2026-10-01T09:00:00+08:00", end="2026-10-01T09:20:00+08:00")]),
    ]
)  # fmt: skip
@pytest.mark.slow
def test_spark_decides_crowded_histories_as_the_rules_do(
    spark: Any, history: list[tuple[str, list[dict[str, Any]]]]
) -> None:
    """Histories of three citizens, a few refs, overlapping trips, replays, conflicts,
    another platform's records and caps that bind (two regions' caps in one month): each
    platform's submissions are files of one Spark ingest, and every receipt is the default
    engine's and the rules'."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        groups: list[tuple[str, list[Path]]] = []
        for n, (platform, batch) in enumerate(history):
            path = write_jsonl(folder / f"{platform}-{n}.jsonl", batch)
            if groups and groups[-1][0] == platform:
                groups[-1][1].append(path)
            else:
                groups.append((platform, [path]))
        apps = [_app(f"sqlite:///{folder / f'{x}.db'}", folder, ("amap", "didi")) for x in "ab"]
        try:
            for app in apps:
                app.catalogue = tight(app.catalogue, CAPS)
            options = SparkOptions(work_dir=str(folder / "spark"), partitions=3, session=spark)
            by_default, by_spark = _ingest_both(apps[0], apps[1], groups, options)
            assert _csv(by_spark) == _csv(by_default)
            assert _decided(by_spark) == _judged(apps[1], groups)
            assert _stored(apps[1]) == _stored(apps[0])
        finally:
            for app in apps:
                app.close()


def test_a_hot_citizen_and_a_hot_ref_are_settled_without_a_nested_loop(
    spark: Any, tmp_path: Path
) -> None:
    """One citizen with 1 500 trips over three days (most overlapping another) and 600
    records of one ref: the overlap rule joins on (citizen, bucket) and the ref rule is an
    aggregate, so the plan holds no nested-loop or cartesian join; receipts are the default
    engine's."""
    start = datetime(2026, 10, 3, tzinfo=UTC)
    rows = [
        trip(
            f"t-{i}",
            subject=CITIZENS[0],
            start=(start + timedelta(minutes=3 * i)).isoformat(),
            end=(start + timedelta(minutes=3 * i + 10)).isoformat(),
            distance_km="1.2",
        )
        for i in range(1_500)
    ]
    rows += [
        trip(
            f"r-{i}",
            subject=CITIZENS[1 + i % 2],
            ref="CARD-TAP-1",
            start=(start + timedelta(hours=i)).isoformat(),
            end=(start + timedelta(hours=i, minutes=20)).isoformat(),
        )
        for i in range(600)
    ]
    path = write_jsonl(tmp_path / "hot.jsonl", rows)
    (tmp_path / "a").mkdir()
    default = _app(f"sqlite:///{tmp_path / 'a.db'}", tmp_path / "a", ["amap"])
    on_spark = _app(f"sqlite:///{tmp_path / 'b.db'}", tmp_path / "a", ["amap"])
    try:
        options = SparkOptions(work_dir=str(tmp_path / "spark"), partitions=4, session=spark)
        by_default, by_spark = _ingest_both(default, on_spark, [("amap", [path])], options)
        assert _csv(by_spark) == _csv(by_default)
        reasons = pa.concat_tables(by_spark).column("reason").to_pylist()
        assert reasons.count("duplicate_ref") == 599
        assert reasons.count("duplicate_overlap") == 1_499

        plan = _plan(spark)
        assert "SortMergeJoin" in plan or "BroadcastHashJoin" in plan
        assert "NestedLoop" not in plan
        assert "Cartesian" not in plan
    finally:
        default.close()
        on_spark.close()


def _plan(spark: Any) -> str:
    """The physical plan of settlement over a few rows of every view it reads."""
    from pyspark.sql.pandas.types import from_arrow_schema

    from puhui.adapters.sql.intake import STORED_RECORDS

    prepared = spark.createDataFrame([], from_arrow_schema(job.PREPARED_ROWS)).withColumn(
        "seq", pyspark.sql.functions.col("row") + 1
    )
    stored = spark.createDataFrame([], from_arrow_schema(STORED_RECORDS))
    settled = job.settle(spark, prepared.drop("error"), stored, 1)
    plans = [settled, spark.sql(spark_settle.NEW_SQL)]
    return "\n".join(p._jdf.queryExecution().executedPlan().toString() for p in plans)


class _Failing(Exception):
    pass


def test_a_job_failing_while_posting_leaves_nothing_and_runs_again(
    database_url: str, spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Posting fails at the third chunk: nothing is stored, no batch, no transfer; the same
    ingest run again gives the default engine's receipts."""
    day = datetime(2026, 10, 1, tzinfo=UTC)
    rows = [
        trip(
            f"f-{i}",
            subject=CITIZENS[i % 3],
            start=(day + timedelta(hours=i)).isoformat(),
            end=(day + timedelta(hours=i, minutes=30)).isoformat(),
        )
        for i in range(900)
    ]
    path = write_jsonl(tmp_path / "f.jsonl", rows)
    app = _app(database_url, tmp_path, ["amap"])
    (tmp_path / "d").mkdir()
    default = _app(f"sqlite:///{tmp_path / 'd' / 'd.db'}", tmp_path, ["amap"])
    options = SparkOptions(
        work_dir=str(tmp_path / "spark"), partitions=2, session=spark, chunk_size=300
    )
    try:
        real = spark_ingest.post_chunk
        calls = []

        def failing(*args: Any, **kwargs: Any) -> tuple[int, int]:
            calls.append(1)
            if len(calls) == 3:
                raise _Failing
            return real(*args, **kwargs)

        with monkeypatch.context() as m:
            m.setattr(spark_ingest, "post_chunk", failing)
            with pytest.raises(_Failing):
                spark_ingest.ingest_on_spark(app, "amap", [path], options=options)
        before = _stored(app)
        assert before["records"] == before["transfers"] == before["batches"] == []
        assert ledger.verify(app) == []

        got: list[pa.Table] = []
        spark_ingest.ingest_on_spark(app, "amap", [path], got.append, options=options)
        want: list[pa.Table] = []
        ingest.ingest_files(default, "amap", [path], want.append, chunk_size=300)
        assert len(want) == 3
        assert _csv(got) == _csv(want)
        assert ledger.verify(app) == []
    finally:
        app.close()
        default.close()


def test_records_stored_during_a_job_are_settled_before_it(
    spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record another ingest stores while the job settles makes the job settle again: the
    job's copy of that record is then a duplicate, as receive order says."""
    app = _app(f"sqlite:///{tmp_path / 'p.db'}", tmp_path, ["amap", "didi"])
    ride = trip("a-1", subject=CITIZENS[0], ref="TAP-7")
    path = write_jsonl(tmp_path / "a.jsonl", [ride])
    options = SparkOptions(work_dir=str(tmp_path / "spark"), partitions=2, session=spark)
    real = spark_ingest._Run._settle
    settled = []

    def settle_then_another_ingest(run: Any, *args: Any) -> Any:
        done = real(run, *args)
        if not settled:
            ingest.ingest_records(
                app, "didi", [trip("d-1", platform="didi", subject=CITIZENS[1], ref="TAP-7")]
            )
        settled.append(1)
        return done

    monkeypatch.setattr(spark_ingest._Run, "_settle", settle_then_another_ingest)
    try:
        got: list[pa.Table] = []
        spark_ingest.ingest_on_spark(app, "amap", [path], got.append, options=options)
        assert len(settled) == 2
        receipt = pa.concat_tables(got).to_pylist()[0]
        assert (receipt["status"], receipt["reason"]) == ("duplicate", "duplicate_ref")
        assert ledger.verify(app) == []
    finally:
        app.close()


def test_an_erasure_rewrites_the_claims_store(spark: Any, tmp_path: Path) -> None:
    """After an erasure the claims store is written again from the database: the erased
    citizen's pseudonym is in none of its files, and a later job still settles as the
    default engine does."""
    app = _app(f"sqlite:///{tmp_path / 'e.db'}", tmp_path, ["amap"])
    options = SparkOptions(work_dir=str(tmp_path / "spark"), partitions=2, session=spark)
    try:
        first = write_jsonl(
            tmp_path / "1.jsonl",
            [trip(f"e-{i}", subject=CITIZENS[i % 2], ref=f"R{i}") for i in range(4)],
        )
        spark_ingest.ingest_on_spark(app, "amap", [first], options=options)
        erased = Preparer(app.catalogue, app.secret, "amap").pseudonym(CITIZENS[0])
        assert erased is not None
        erasure.erase_subject(app, CITIZENS[0], by="operator", grounds="the citizen asked")
        later = trip(
            "e-9",
            subject=CITIZENS[1],
            ref="R1",
            start="2026-10-01T10:00:00+08:00",
            end="2026-10-01T10:20:00+08:00",
        )
        second = write_jsonl(tmp_path / "2.jsonl", [later])
        got: list[pa.Table] = []
        spark_ingest.ingest_on_spark(app, "amap", [second], got.append, options=options)
        assert pa.concat_tables(got).column("reason").to_pylist() == ["duplicate_ref"]
        store = ClaimsStore(str(tmp_path / "spark"))
        files = list(Path(store.folder).glob("*.parquet"))
        assert files
        seen = {p for f in files for p in pq.read_table(f).column("pseudonym").to_pylist()}
        assert erased not in seen
        mark = store.mark()
        assert mark is not None

        # A part left by a sync that stopped before writing its manifest is not read twice.
        orphan = Path(store.folder) / f"part-{mark.last_seq + 1:012d}-deadbeef.parquet"
        orphan.write_bytes(files[0].read_bytes())
        with app.intake() as uow:
            store.sync(mark.database, uow.store)
        assert not orphan.exists()
    finally:
        app.close()


def test_a_missing_or_unreadable_file_refuses_the_job(spark: Any, tmp_path: Path) -> None:
    """A missing file, or a CSV whose header cannot be read, refuses the whole job before
    anything is posted, naming the file."""
    app = _app(f"sqlite:///{tmp_path / 'm.db'}", tmp_path, ["amap"])
    options = SparkOptions(work_dir=str(tmp_path / "spark"), partitions=2, session=spark)
    good = write_jsonl(tmp_path / "good.jsonl", [trip("g-1")])
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"\xff\xfeplatform,record_id\n")
    try:
        with pytest.raises(InputError, match=r"nowhere\.jsonl: no such file"):
            spark_ingest.ingest_on_spark(
                app, "amap", [good, tmp_path / "nowhere.jsonl"], options=options
            )
        with pytest.raises(InputError, match=r"bad\.csv"):
            spark_ingest.ingest_on_spark(app, "amap", [good, bad], options=options)
        assert _stored(app)["records"] == []
    finally:
        app.close()


def test_a_uri_pattern_names_the_files_it_matches_in_name_order(tmp_path: Path) -> None:
    """`part-*.jsonl` at the end of a URI: the folder's matching files (not its folders), in
    name order; no match or no folder refuses the job; Hadoop's s3a:// is pyarrow's s3://."""
    for name in ("part-10.jsonl", "part-02.jsonl", "part-01.jsonl", "other.csv"):
        (tmp_path / name).write_text("")
    (tmp_path / "part-03.jsonl").mkdir()
    uri = f"file://{tmp_path}"
    assert spark_ingest.expand(f"{uri}/part-*.jsonl") == [
        f"{uri}/part-01.jsonl",
        f"{uri}/part-02.jsonl",
        f"{uri}/part-10.jsonl",
    ]
    assert spark_ingest.expand(f"{uri}/part-0[2-9].jsonl") == [f"{uri}/part-02.jsonl"]
    assert spark_ingest.expand(f"{uri}/other.csv") == [f"{uri}/other.csv"]
    with pytest.raises(InputError, match=r"part-\*\.parquet: no file matches"):
        spark_ingest.expand(f"{uri}/part-*.parquet")
    with pytest.raises(InputError, match="nowhere: no such folder"):
        spark_ingest.expand(f"{uri}/nowhere/*.jsonl")
    assert arrow_uri("s3a://intake/amap/part-1.jsonl") == "s3://intake/amap/part-1.jsonl"
    assert arrow_uri("hdfs://nn/intake") == "hdfs://nn/intake"


@pytest.mark.slow
def test_the_end_to_end_data_set_gets_its_truth_on_spark(spark: Any, tmp_path: Path) -> None:
    """The command line's end-to-end data set (tests/e2e/test_generated_files.py: 4 000 records
    of nine platforms in JSON Lines, CSV and Parquet, every planted case) ingested on Spark in
    the order the truth assumes, on one session: each row gets its expected receipt, the
    credits add up to the truth's, and the ledger is sound. (`puhui ingest --engine spark` as a
    process is tests/e2e/test_spark_submit.py's.)"""
    from tests.e2e.test_generated_files import RECORDS, SEED, _mismatch

    truth = generate(tmp_path / "data", records=RECORDS, seed=SEED, fmt="mixed")
    app = _app(f"sqlite:///{tmp_path / 'p.db'}", tmp_path, truth.platforms)
    options = SparkOptions(work_dir=str(tmp_path / "spark"), partitions=4, session=spark)
    receipts: dict[tuple[str, int], dict[str, Any]] = {}
    try:
        for platform, path in truth.files:
            tables: list[pa.Table] = []
            spark_ingest.ingest_on_spark(app, platform, [path], tables.append, options=options)
            for row in pa.concat_tables(tables).to_pylist():
                assert row["platform"] == platform
                receipts[(str(row["file"]), int(row["row"]))] = row
        assert len(receipts) == len(truth.expected) == RECORDS
        problems = [
            problem
            for e in truth.expected
            if (problem := _mismatch(e, receipts.get((e.file, e.row)))) is not None
        ]
        assert not problems, "\n".join(problems[:25])
        credited = sum(
            int(receipts[(e.file, e.row)]["reduction_g"]) for e in truth.expected if not e.replay
        )
        assert credited == truth.total_g
        assert ledger.verify(app) == []
    finally:
        app.close()
