"""The review queue on SQL (spec v1.1): the held records operators review, with what each source
reported of the same citizen around them, and each platform's review rates
(`service.review_queue` states what each means).

Nothing read here leaves with an identifier of a citizen: the citizen and the device of a held
record are only compared inside the queries (their records, how many citizens a device served),
never returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, Engine, text

# A held record as the queue lists it: the record, its hold row, and the corroborating record's
# platform and id.
_HELD = (
    "select h.record_seq, p.code, r.record_id, r.scene, r.region, r.start_ms, r.end_ms, "
    "r.amount_milli, r.reduction_g, r.status, h.reasons, h.evidence, h.policy, h.grams, "
    "h.held_at, h.until, cp.code, c.record_id, h.decided_at, h.outcome, h.outcome_reason, "
    "h.decided_by, h.note from holds h "
    "join records r on r.seq = h.record_seq "
    "join platforms p on p.id = h.platform_id "
    "left join records c on c.seq = h.corroborated_by "
    "left join platforms cp on cp.id = c.platform_id"
)
# A record of the same citizen, as the review shows it beside a held one.
_RELATED = (
    "select p.code, r.record_id, r.scene, r.region, r.start_ms, r.end_ms, r.amount_milli, "
    "r.status, r.reason, r.duplicate_of from records r join platforms p on p.id = r.platform_id"
)


class SqlReviewReads:
    """Implements `service.ports.ReviewReads` on a database engine, one read transaction a
    call."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def queue(
        self,
        platform: str | None,
        reason: str | None,
        scene: str | None,
        region: str | None,
        state: str,
        limit: int,
        after_seq: int,
    ) -> list[tuple[Any, ...]]:
        """Held records numbered above `after_seq`, in receive order, at most `limit`: (seq,
        platform, record id, scene, region, start ms, end ms, amount × 1000, grams of the
        receipt, status, reasons, evidence JSON, policy, grams held, held at, until,
        corroborating platform, corroborating record id, decided at, outcome, outcome reason,
        decided by, note). `state`: open (not decided yet), decided or all; `region` matches
        a code's prefix; `reason` one of the codes it was held for."""
        where = ["h.record_seq > :after"]
        params: dict[str, Any] = {"after": after_seq, "n": limit}
        if state == "open":
            where.append("h.decided_at is null")
        elif state == "decided":
            where.append("h.decided_at is not null")
        if platform is not None:
            where.append("p.code = :platform")
            params["platform"] = platform
        if reason is not None:
            where.append(f"{self._find()}(';' || h.reasons || ';', :reason) > 0")
            params["reason"] = f";{reason};"
        if scene is not None:
            where.append("r.scene = :scene")
            params["scene"] = scene
        if region is not None:
            where.append(f"{self._find()}(r.region, :region) = 1")
            params["region"] = region
        sql = f"{_HELD} where {' and '.join(where)} order by h.record_seq limit :n"
        return self._all(sql, params)

    def item(
        self, seq: int, window_ms: int, device_window_ms: int
    ) -> tuple[tuple[Any, ...], list[tuple[Any, ...]], tuple[Any, ...] | None, int | None] | None:
        """A held record (a row of `queue`) read together with its evidence: the records of
        the same citizen, from any platform, starting within `window_ms` of it, in start order
        (platform, record id, scene, region, start ms, end ms, amount × 1000, status, reason,
        whether it is a duplicate of the held record); the corroborating record in the same
        form, if one did; and how many citizens its device reported behaviours of within
        `device_window_ms` of it (None when it carries no device). None when the record was
        never held."""
        with self.engine.connect() as conn:
            row = conn.execute(text(f"{_HELD} where h.record_seq = :seq"), {"seq": seq}).first()
            if row is None:
                return None
            subject, device, start, platform = conn.execute(
                text(
                    "select subject_id, device, start_ms, platform_id from records where seq = :seq"
                ),
                {"seq": seq},
            ).one()
            related: list[tuple[Any, ...]] = []
            if subject is not None and start is not None:
                related = self._related(
                    conn,
                    "r.subject_id = :subject and r.start_ms >= :lo and r.start_ms <= :hi "
                    "and r.seq <> :seq order by r.start_ms, r.seq limit 200",
                    {"subject": subject, "lo": start - window_ms, "hi": start + window_ms},
                    seq,
                )
            corroboration = self._related(
                conn,
                "r.seq = (select corroborated_by from holds where record_seq = :seq)",
                {},
                seq,
            )
            citizens = None
            if device is not None and start is not None:
                citizens = int(
                    conn.execute(
                        text(
                            # Devices are each platform's own identifiers (`domain.signals`).
                            "select count(distinct subject_id) from records where device = :d "
                            "and platform_id = :p and start_ms > :lo and start_ms < :hi"
                        ),
                        {
                            "d": device,
                            "p": platform,
                            "lo": start - device_window_ms,
                            "hi": start + device_window_ms,
                        },
                    ).scalar_one()
                )
        return tuple(row), related, (corroboration[0] if corroboration else None), citizens

    def rates(self) -> list[tuple[Any, ...]]:
        """(platform, records, held ever, open now, corroborated, released, rejected on review,
        not corroborated, credited uncorroborated) of every platform, by code: its records from
        the tallies (every status), its held records from their hold rows."""
        return self._all(
            "select p.code, coalesce(n.records, 0), coalesce(h.held, 0), coalesce(h.open, 0), "
            "coalesce(h.corroborated, 0), coalesce(h.released, 0), "
            "coalesce(h.rejected_on_review, 0), coalesce(h.not_corroborated, 0), "
            "coalesce(h.credited_uncorroborated, 0) from platforms p "
            "left join (select key, sum(records) as records from tallies "
            "where dimension = 'platform' group by key) n on n.key = cast(p.id as varchar(12)) "
            "left join (select platform_id, count(*) as held, "
            "count(case when decided_at is null then 1 end) as open, "
            "count(case when outcome_reason = 'corroborated' then 1 end) as corroborated, "
            "count(case when outcome_reason = 'released' then 1 end) as released, "
            "count(case when outcome_reason = 'rejected_on_review' then 1 end) "
            "as rejected_on_review, "
            "count(case when outcome_reason = 'not_corroborated' then 1 end) "
            "as not_corroborated, "
            "count(case when outcome_reason = 'credited_uncorroborated' then 1 end) "
            "as credited_uncorroborated "
            "from holds group by platform_id) h on h.platform_id = p.id order by p.code",
            {},
        )

    def citizen_holds(self, pseudonym: str, limit: int) -> list[tuple[Any, ...]]:
        """A citizen's records that were held, newest first: (seq, platform, scene, start ms,
        grams held, status, reason, held at, decided at)."""
        return self._all(
            "select r.seq, p.code, r.scene, r.start_ms, h.grams, r.status, r.reason, "
            "h.held_at, h.decided_at from subjects s "
            "join records r on r.subject_id = s.id "
            "join holds h on h.record_seq = r.seq "
            "join platforms p on p.id = r.platform_id "
            "where s.pseudonym = :p order by r.seq desc limit :n",
            {"p": pseudonym, "n": limit},
        )

    def _related(
        self, conn: Connection, where: str, params: Mapping[str, Any], seq: int
    ) -> list[tuple[Any, ...]]:
        rows = conn.execute(text(f"{_RELATED} where {where}"), {**params, "seq": seq}).all()
        return [(*row[:9], row[9] == seq) for row in rows]

    def _find(self) -> str:
        """The position of a text in another: `instr` on SQLite, `strpos` on PostgreSQL."""
        return "instr" if self.engine.dialect.name == "sqlite" else "strpos"

    def _all(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        with self.engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params).all()]
