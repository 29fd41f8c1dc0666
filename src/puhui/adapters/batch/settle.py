"""Settlement: one behaviour, one credit, set-based.

Given a prepared chunk and what the database already holds about the same keys, decide every
record's receipt in one SQL pass (DuckDB here; the statements are plain window functions and
joins, partitioned by the dedup keys, so Spark SQL runs them unchanged when one machine is
outgrown). The rules, from spec/activity-record-v1.md:

1. A replay of (platform, record_id) with the same content gets the stored receipt again and
   nothing else; with other content it is refused as a `conflict`. Within one chunk the first
   occurrence is the record and later ones are replays or conflicts of it.
2. A record that is not rejected is a duplicate when an earlier-received record that was not
   rejected is the same behaviour: same scene and `ref` (`duplicate_ref`), or a trip of the same
   citizen overlapping it by more than half of the shorter interval (`duplicate_overlap`).
   Earlier means a smaller receive sequence number, in this chunk or in the database. Rejected
   records never block; duplicates do, since they are the same behaviour as a credit.
3. What remains is credited, in receive order, up to its methodology's caps per citizen, scene,
   day and month (Asia/Shanghai): count caps first, then gram caps, day before month. A record
   credited less than computed carries reason `capped`. Count caps count every credited record
   of the period, including one capped to 0 g; gram caps count the grams actually credited.

This is a rendering of `domain.settlement`, the statement of these rules, and is tested against
it. Gram caps have a closed form over window sums only when every record of a citizen's scene
and month meets the same caps; a month in which the caps differ (trips under two regions'
methodologies) is rare, and its records' grams are decided by the statement instead.
"""

from __future__ import annotations

from contextlib import suppress

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from puhui.domain.reasons import Reason
from puhui.domain.settlement import Book, Candidate, Caps, Role, Usage, month_of

UNKEYED = (
    Reason.MALFORMED_ROW,
    Reason.ROW_TOO_LONG,
    Reason.INVALID_ENCODING,
    Reason.PLATFORM_MISMATCH,
    Reason.RECORD_ID_TOO_LONG,
    Reason.ILL_TYPED_RECORD_ID,
)

SETTLE_SQL = f"""
with chunk as (
    select p.*, sid.subject_id,
        p.record_id is null or p.platform is null
            or list_has_any(p.checks, ['{"', '".join(UNKEYED)}']) as unkeyed
    from prepared p left join subject_ids sid on sid.pseudonym = p.pseudonym
),
firsts as (
    select record_id, min(seq) as first_seq, arg_min(digest, seq) as first_digest
    from chunk where not unkeyed group by record_id
),
classified as (
    select c.*,
        f.first_seq,
        e.seq as stored_seq,
        case
            when c.unkeyed then 'unkeyed'
            when e.seq is not null and e.digest = c.digest then 'replay_stored'
            when e.seq is not null then 'conflict_stored'
            when c.seq <> f.first_seq and c.digest = f.first_digest then 'repeat'
            when c.seq <> f.first_seq then 'conflict_repeat'
            else 'new'
        end as role
    from chunk c
    left join firsts f on f.record_id = c.record_id
    left join existing_records e on e.record_id = c.record_id
),
new_rows as (
    select * from classified where role = 'new'
),
claims as (
    -- Every record that holds a claim: stored ones (not rejected) and new ones not rejected.
    select seq, scene, ref, subject_id, kind, start_ms, end_ms from existing_claims
    union all
    select seq, scene, ref, subject_id, kind, start_ms, end_ms
    from new_rows where len(checks) = 0
),
ref_dups as (
    select n.seq, min(c.seq) as dup_of
    from new_rows n join claims c
      on c.scene = n.scene and c.ref = n.ref and c.seq < n.seq
    where len(n.checks) = 0 and n.ref is not null
    group by n.seq
),
overlap_dups as (
    select n.seq, min(c.seq) as dup_of
    from new_rows n join claims c
      on c.subject_id = n.subject_id and c.kind = 'trip'
     and c.start_ms < n.end_ms and n.start_ms < c.end_ms and c.seq < n.seq
    where len(n.checks) = 0 and n.kind = 'trip'
      and 2 * (least(c.end_ms, n.end_ms) - greatest(c.start_ms, n.start_ms))
          > least(c.end_ms - c.start_ms, n.end_ms - n.start_ms)
    group by n.seq
),
decided as (
    select n.*,
        r.dup_of as ref_dup_of, o.dup_of as overlap_dup_of,
        case when len(n.checks) > 0 then 'rejected'
             when r.dup_of is not null or o.dup_of is not null then 'duplicate'
             else 'eligible' end as outcome,
        n.day_cn as day, date_trunc('month', n.day_cn)::date as month
    from new_rows n
    left join ref_dups r on r.seq = n.seq
    left join overlap_dups o on o.seq = n.seq
),
counted as (
    select d.*,
        coalesce(ud.n, 0) + row_number() over (
            partition by d.subject_id, d.scene, d.day order by d.seq) as day_rank
    from decided d
    left join usage_day ud on ud.subject_id = d.subject_id and ud.scene = d.scene and ud.day = d.day
    where d.outcome = 'eligible'
),
day_counted as (
    select *, day_max_count is null or day_rank <= day_max_count as within_day_count
    from counted
),
month_counted as (
    select d.*,
        -- Do the records of this citizen's scene and month meet different gram caps?
        min(coalesce(d.day_max_g, -1)) over m <> max(coalesce(d.day_max_g, -1)) over m
            or min(coalesce(d.month_max_g, -1)) over m <> max(coalesce(d.month_max_g, -1)) over m
            as mixed_caps,
        -- Like stored ones, every credited record counts towards the month, even one a day
        -- count cap left at 0 g.
        within_day_count and (month_max_count is null or coalesce(um.n, 0) + row_number() over (
            partition by d.subject_id, d.scene, d.month order by d.seq) <= month_max_count)
        as within_count,
        coalesce(ud.g, 0) as day_prior_g, coalesce(um.g, 0) as month_prior_g
    from day_counted d
    left join usage_month um on um.subject_id = d.subject_id and um.scene = d.scene and um.month = d.month
    left join usage_day ud on ud.subject_id = d.subject_id and ud.scene = d.scene and ud.day = d.day
    window m as (partition by d.subject_id, d.scene, d.month)
),
day_capped as (
    -- Greedy crediting under a cap has a closed form: what the cumulative total gains below
    -- the cap when this record is added.
    select *,
        case when not within_count then 0
             when day_max_g is null then computed_g
             else greatest(0,
                least(day_prior_g + day_cum, day_max_g) - least(day_prior_g + day_cum - g0, day_max_g))
        end as after_day
    from (
        select *,
            case when within_count then computed_g else 0 end as g0,
            sum(case when within_count then computed_g else 0 end) over (
                partition by subject_id, scene, day order by seq
                rows between unbounded preceding and current row) as day_cum
        from month_counted
    )
),
capped as (
    select *,
        case when month_max_g is null then after_day
             else greatest(0,
                least(month_prior_g + month_cum, month_max_g)
                - least(month_prior_g + month_cum - after_day, month_max_g))
        end as credited_g
    from (
        select *, sum(after_day) over (
            partition by subject_id, scene, month order by seq
            rows between unbounded preceding and current row) as month_cum
        from day_capped
    )
),
new_final as (
    select
        d.row, d.seq, d.record_id, d.digest, d.subject_id, d.scene, d.region, d.kind,
        d.start_ms, d.end_ms, d.amount_milli, d.material, d.ref, d.extra, d.quant_key,
        case when d.outcome = 'rejected' then null else d.methodology end as methodology,
        case d.outcome when 'eligible' then 'credited' else d.outcome end as status,
        array_to_string(case
            when d.outcome = 'rejected' then d.checks
            when d.outcome = 'duplicate' then list_filter([
                case when d.ref_dup_of is not null then '{Reason.DUPLICATE_REF}' end,
                case when d.overlap_dup_of is not null then '{Reason.DUPLICATE_OVERLAP}' end],
                lambda x: x is not null)
            when c.credited_g < d.computed_g then ['{Reason.CAPPED}']
            else [] end, ';') as reason,
        d.detail,
        coalesce(c.credited_g, 0)::bigint as reduction_g,
        case when d.outcome = 'duplicate' then least(d.ref_dup_of, d.overlap_dup_of) end
            as duplicate_of,
        '{Role.NEW}' as role,
        d.seq as receipt_seq,
        coalesce(c.mixed_caps, false) as mixed_caps
    from decided d left join capped c on c.seq = d.seq
),
others as (
    select
        cl.row, cl.seq, cl.record_id, cl.digest, cl.subject_id, cl.scene, cl.region, cl.kind,
        cl.start_ms, cl.end_ms, cl.amount_milli, cl.material, cl.ref, cl.extra, cl.quant_key,
        case cl.role when 'replay_stored' then e.methodology
                     when 'repeat' then nf.methodology end as methodology,
        case cl.role when 'replay_stored' then e.status
                     when 'repeat' then nf.status else 'rejected' end as status,
        case cl.role when 'replay_stored' then e.reason
                     when 'repeat' then nf.reason
                     when 'unkeyed' then array_to_string(cl.checks, ';')
                     else '{Reason.CONFLICT}' end as reason,
        case cl.role when 'replay_stored' then e.detail
                     when 'repeat' then nf.detail
                     when 'unkeyed' then cl.detail else '' end as detail,
        case cl.role when 'replay_stored' then e.reduction_g
                     when 'repeat' then nf.reduction_g else 0 end as reduction_g,
        case cl.role when 'replay_stored' then e.duplicate_of
                     when 'repeat' then nf.duplicate_of end as duplicate_of,
        -- The statement's roles: a replay or a conflict of a record stored or of this chunk.
        case when cl.role in ('replay_stored', 'repeat') then '{Role.REPLAY}'
             when cl.role in ('conflict_stored', 'conflict_repeat') then '{Role.CONFLICT}'
             else '{Role.UNKEYED}' end as role,
        case when cl.role in ('replay_stored', 'conflict_stored') then cl.stored_seq
             when cl.role in ('repeat', 'conflict_repeat') then cl.first_seq end as receipt_seq,
        false as mixed_caps
    from classified cl
    left join existing_records e on e.seq = cl.stored_seq
    left join new_final nf on nf.seq = cl.first_seq
    where cl.role <> 'new'
)
select * from new_final
union all
select * from others
order by row
"""


def settle(
    con: duckdb.DuckDBPyConnection,
    prepared: pa.Table,
    subject_ids: pa.Table,
    existing_records: pa.Table,
    existing_claims: pa.Table,
    usage_day: pa.Table,
) -> pa.Table:
    """Decide the receipt of every record of a prepared chunk (with `seq` assigned).

    Every input row gets one output row carrying its receipt and its `Role`: `new` rows are to
    be stored; `replay` rows are answered with the receipt of the record they repeat, stored or
    earlier in the chunk (`receipt_seq`); `conflict` rows are refused as conflicts with it;
    `unkeyed` rows cannot be stored under a (platform, record_id) and are answered as rejected.
    """
    con.register("prepared", prepared)
    con.register("subject_ids", subject_ids)
    con.register("existing_records", existing_records)
    con.register("existing_claims", existing_claims)
    con.register("usage_day", usage_day)
    con.execute(
        "create or replace temp view usage_month as "
        "select subject_id, scene, date_trunc('month', day)::date as month, "
        "sum(g) as g, sum(n) as n from usage_day group by all"
    )
    try:
        settled = con.sql(SETTLE_SQL).to_arrow_table()
        if not pc.any(settled.column("mixed_caps")).as_py():
            return settled.drop_columns(["mixed_caps"])
        con.register("settled", settled)
        mixed = [
            Candidate(
                seq=seq,
                key=None,
                digest="",
                citizen=subject,
                scene=scene,
                day=day,
                computed_g=computed_g,
                caps=Caps(*caps),
            )
            for seq, subject, scene, day, computed_g, *caps in con.execute(
                "select p.seq, sid.subject_id, p.scene, p.day_cn, p.computed_g, p.day_max_g, "
                "p.day_max_count, p.month_max_g, p.month_max_count from prepared p "
                "join subject_ids sid on sid.pseudonym = p.pseudonym "
                f"join settled s on s.seq = p.seq and s.role = '{Role.NEW}' "
                "and s.status = 'credited' "
                "where s.mixed_caps order by p.seq"
            ).fetchall()
        ]
        return _capped_by_the_statement(settled, mixed, usage_day).drop_columns(["mixed_caps"])
    finally:
        for name in (
            "prepared",
            "subject_ids",
            "existing_records",
            "existing_claims",
            "usage_day",
            "settled",
        ):
            with suppress(duckdb.Error):
                con.unregister(name)


def _capped_by_the_statement(
    settled: pa.Table, mixed: list[Candidate], usage_day: pa.Table
) -> pa.Table:
    """Decide the grams of credited records whose month meets several caps, in receive order,
    as `domain.settlement` states it, from the usage stored before the chunk."""
    months = {(c.citizen, c.scene, month_of(c.day)) for c in mixed if c.day is not None}
    usage = {
        (u["subject_id"], u["scene"], u["day"]): Usage(u["n"], u["g"])
        for u in usage_day.to_pylist()
        if (u["subject_id"], u["scene"], month_of(u["day"])) in months
    }
    book = Book.of(usage_by_day=usage)
    grams = {c.seq: book.credit_within_caps(c) for c in mixed}
    computed = {c.seq: c.computed_g for c in mixed}
    seqs = settled.column("seq").to_pylist()
    reductions = [
        grams.get(s, g)
        for s, g in zip(seqs, settled.column("reduction_g").to_pylist(), strict=True)
    ]
    reasons = [
        (str(Reason.CAPPED) if grams[s] < computed[s] else "") if s in grams else r
        for s, r in zip(seqs, settled.column("reason").to_pylist(), strict=True)
    ]
    i = settled.schema.get_field_index("reduction_g")
    settled = settled.set_column(i, "reduction_g", pa.array(reductions, pa.int64()))
    i = settled.schema.get_field_index("reason")
    return settled.set_column(i, "reason", pa.array(reasons, pa.string()))
