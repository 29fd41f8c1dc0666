"""Statistics on SQL: regulators' figures read from the tallies settlement keeps, or recounted
from the stored records for a window of days (`service.oversight` states what each means)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Engine, text

from puhui.adapters.sql import tallies
from puhui.domain import china_time

# Tallies of platforms are keyed by the platform's id.
_PLATFORM_OF_KEY = "left join platforms p on cast(p.id as varchar(12)) = t.key"
# Dimensions listed in calendar order rather than largest first.
_CALENDAR = ("day", "month")


class SqlReports:
    """Implements `service.ports.Reports` on a database engine, one read transaction a call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def reductions(
        self, by: str, day_from: date | None, day_to: date | None
    ) -> list[tuple[Any, ...]]:
        """(key, grams, records, participants) per value of dimension `by`, largest first
        (days and months in calendar order): from the tallies, except a breakdown other than
        by day within a window of days, which recounts the window's records."""
        order = "1" if by in _CALENDAR else "2 desc, 1"
        if by == "day" or (day_from is None and day_to is None):
            key = "coalesce(p.code, t.key)" if by == "platform" else "t.key"
            where, params = "", dict[str, object]()
            if day_from is not None:
                where += " and t.key >= :lo"
                params["lo"] = day_from.isoformat()
            if day_to is not None:
                where += " and t.key < :hi"
                params["hi"] = day_to.isoformat()
            return self._all(
                f"select {key}, sum(t.grams), sum(t.records), sum(t.participants) "
                f"from tallies t {_PLATFORM_OF_KEY} where t.dimension = :dimension "
                f"and t.status = 'credited' {where} group by {key} order by {order}",
                {"dimension": by, **params},
            )
        key = "p.code" if by == "platform" else tallies.keys(self.engine.dialect.name)[by]
        window, bounds = _window(day_from, day_to)
        return self._all(
            f"select {key}, sum(r.reduction_g), count(*), count(distinct r.subject_id) "
            "from records r join platforms p on p.id = r.platform_id "
            f"where r.status = 'credited' {window} group by {key} order by {order}",
            bounds,
        )

    def totals(self, day_from: date | None, day_to: date | None) -> tuple[Any, ...]:
        """(grams, credited records, participants, platforms that credited, records)."""
        [row] = self._tallied_or_recounted(
            "select coalesce(sum(case when t.status = 'credited' then t.grams end), 0), "
            "coalesce(sum(case when t.status = 'credited' then t.records end), 0), "
            "coalesce(sum(t.participants), 0), "
            "(select count(distinct k.key) from tallies k where k.dimension = 'platform' "
            "and k.status = 'credited' and k.records > 0), coalesce(sum(t.records), 0) "
            "from tallies t where t.dimension = 'all'",
            "select coalesce(sum(case when r.status = 'credited' then r.reduction_g end), 0), "
            "count(case when r.status = 'credited' then 1 end), "
            "count(distinct case when r.status = 'credited' then r.subject_id end), "
            "count(distinct case when r.status = 'credited' then r.platform_id end), count(*) "
            "from records r where 1 = 1 {window}",
            day_from,
            day_to,
        )
        return row

    def outcomes(self, day_from: date | None, day_to: date | None) -> list[tuple[Any, ...]]:
        """(platform, status, reasons, records) of the stored records."""
        return self._tallied_or_recounted(
            "select p.code, t.status, t.reason, t.records from tallies t "
            "join platforms p on cast(p.id as varchar(12)) = t.key "
            "where t.dimension = 'platform' and t.records > 0",
            "select p.code, r.status, r.reason, count(*) from records r "
            "join platforms p on p.id = r.platform_id where 1 = 1 {window} "
            "group by p.code, r.status, r.reason",
            day_from,
            day_to,
        )

    def duplicate_pairs(self, day_from: date | None, day_to: date | None) -> list[tuple[Any, ...]]:
        """(reporting platform, platform received first, reason, records) of duplicates."""
        return self._tallied_or_recounted(
            "select p.code, q.code, t.reason, t.records from platforms p cross join platforms q "
            "join tallies t on t.key = cast(p.id as varchar(12)) || '>' "
            "|| cast(q.id as varchar(12)) where t.dimension = 'pair'",
            "select p.code, q.code, r.reason, count(*) from records r "
            "join platforms p on p.id = r.platform_id "
            "join records f on f.seq = r.duplicate_of "
            "join platforms q on q.id = f.platform_id "
            "where r.status = 'duplicate' {window} group by p.code, q.code, r.reason",
            day_from,
            day_to,
        )

    def outcome_participants(self, reasons: Sequence[str]) -> list[tuple[Any, ...]]:
        """(status, reason, distinct citizens) of the records not credited, per status and
        each of these reason codes: tallies count records by reason but citizens only where
        credited, so the records themselves are counted, in one grouped query."""
        if not reasons:
            return []
        codes = " union all ".join(f"select :c{i} as code" for i in range(len(reasons)))
        find = "instr" if self.engine.dialect.name == "sqlite" else "strpos"
        return self._all(
            f"select r.status, c.code, count(distinct r.subject_id) from records r "
            f"join ({codes}) c on {find}(';' || r.reason || ';', ';' || c.code || ';') > 0 "
            "where r.status <> 'credited' group by r.status, c.code",
            {f"c{i}": code for i, code in enumerate(reasons)},
        )

    def _tallied_or_recounted(
        self, tallied: str, recount: str, day_from: date | None, day_to: date | None
    ) -> list[tuple[Any, ...]]:
        """The rows of `tallied` without a window of days; with one, those of `recount`, whose
        `{window}` takes the window's conditions on `records r`."""
        if day_from is None and day_to is None:
            return self._all(tallied, {})
        where, params = _window(day_from, day_to)
        return self._all(recount.format(window=where), params)

    def _all(self, sql: str, params: Mapping[str, object]) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params).all()]


def _window(day_from: date | None, day_to: date | None) -> tuple[str, dict[str, int]]:
    clauses, params = "", {}
    if day_from is not None:
        clauses += " and r.start_ms >= :lo"
        params["lo"] = china_time.day_start_ms(day_from)
    if day_to is not None:
        clauses += " and r.start_ms < :hi"
        params["hi"] = china_time.day_start_ms(day_to)
    return clauses, params
