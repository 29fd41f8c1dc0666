"""The fraud signals' SQL rendering runs on Spark SQL too, and gives the statement's findings."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from puhui.adapters.batch.signals import SEEN
from puhui.domain.evidence import Thresholds
from puhui.domain.reasons import Reason
from puhui.domain.signals import Measured, Seen, fired, sql_of_all
from tests.unit.test_signals import TIGHT, T, _tables, histories

pyspark = pytest.importorskip("pyspark")

_TYPES = {"int64": "bigint", "bool": "boolean", "double": "double", "string": "string"}
SEEN_DDL = ", ".join(f"{f.name} {_TYPES[str(f.type)]}" for f in SEEN)
BURST_DDL = "platform_id bigint, region string, scene string, minute bigint, n bigint"


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from puhui.adapters.spark import job

    session = job.session("local[1]", 2)
    yield session
    session.stop()


def _view(spark: Any, table: pa.Table, ddl: str, name: str) -> None:
    names = table.schema.names
    rows = [tuple(r[c] for c in names) for r in table.to_pylist()]
    spark.createDataFrame(rows, ddl).createOrReplaceTempView(name)


def _on_spark(
    spark: Any, seen: pa.Table, history: pa.Table, t: Thresholds
) -> dict[int, dict[Reason, Measured]]:
    _view(spark, seen, SEEN_DDL, "seen")
    _view(spark, history, BURST_DDL, "burst_history")
    out: dict[int, dict[Reason, Measured]] = {}
    for row in spark.sql(sql_of_all(t)).collect():
        v2 = None if row.v2 is None else int(row.v2)
        out.setdefault(int(row.seq), {})[Reason(row.code)] = (int(row.v1), v2)
    return out


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(case=histories())
def test_spark_sql_gives_the_statements_findings(
    spark: Any, case: tuple[list[Seen], list[int]]
) -> None:
    rows, judged = case
    if not judged:
        return
    seen, history = _tables(rows, judged)
    for thresholds in (T, TIGHT):
        assert _on_spark(spark, seen, history, thresholds) == fired(judged, rows, thresholds)
