"""Settlement on Apache Spark: the rules of `domain.settlement` as one Spark SQL statement.

This is the statement of `adapters.batch.settle` (DuckDB) rendered for Spark, over a whole
ingest at once rather than a chunk, and against the stored claims the claims store keeps in
Parquet (`adapters.spark.claims`). Citizens are known here by their pseudonym: subject ids are
given when the result is posted to the database. It is tested against the statement of the
rules, like every other rendering.

What makes it hold at scale, with no task seeing more than its keys:

- the stored history is cut to what the ingest's keys can meet before any shuffle
  (`history_sql`: semi-joins of the claims store with the ingest's distinct record ids,
  `(scene, ref)` and citizens); a small ingest's keys are broadcast, and the store is scanned,
  not shuffled;
- every rule is a grouping by its dedup key: (platform, record_id) for replays, (scene, ref)
  for the same evidence, (citizen, scene, China day / month) for the caps;
- the earliest claim of a (scene, ref) is an aggregate joined back (`ref_first`), not a join of
  every record with every earlier one: a ref with thousands of records costs one partial
  aggregation per task, then one row;
- the overlap rule joins trips on an equality key, the citizen and the `LONGEST_TRIP_MS` bucket
  of the start: no trip lasts longer, so a trip can only overlap trips that started in its own
  bucket or the next one on either side. A citizen with thousands of trips compares each only
  with the trips of three buckets, and Spark's adaptive execution splits a skewed partition
  (`spark.sql.adaptive.skewJoin.enabled`).

Gram caps have a closed form over window sums only when every record of a citizen's scene and
month meets the same caps; the records of a month whose caps differ (`mixed_caps`, rare) are
credited by the statement of the rules on the driver (`grams_by_the_statement`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from puhui.adapters.batch.settle import UNKEYED
from puhui.domain import china_time
from puhui.domain.reasons import Reason
from puhui.domain.rules import LONGEST_TRIP_MS
from puhui.domain.settlement import Book, Candidate, Role, Usage, month_of

_UNKEYED = ", ".join(f"'{r}'" for r in UNKEYED)
_NO_REASONS = "cast(array() as array<string>)"


def china_day(ms: str) -> str:
    """Spark SQL for the China day an instant (epoch ms) falls on."""
    return (
        f"date_from_unix_date(cast(floor(({ms} + {china_time.OFFSET_MS}) / "
        f"{china_time.DAY_MS}) as int))"
    )


def _bucket(ms: str) -> str:
    return f"cast(floor({ms} / {LONGEST_TRIP_MS}) as bigint)"


# Views it reads (`adapters.spark.job.settle` makes them; the stored ones hold only what the
# ingest's own keys can meet, `history_sql`):
#   prepared            the ingest's records (`adapters.batch.prepared.PREPARED`, with `seq`,
#                       the receive order, greater than every stored record's)
#   stored_records      this platform's stored records of the ingest's record ids: record_id,
#                       seq, digest and receipt
#   stored_ref_claims   stored records not rejected, of the ingest's (scene, ref): seq, scene,
#                       ref
#   stored_trip_claims  stored trips not rejected, of the ingest's citizens: seq, pseudonym,
#                       start_ms, end_ms
#   stored_usage        credited and held records of the ingest's citizens per pseudonym,
#                       scene and China day: g, n
CLASSIFY_SQL = f"""
with chunk as (
    -- Only what the rules read travels through the shuffles: the rest of each record stays in
    -- the staged preparation, where the driver reads it back.
    select p.file, p.chunk, p.row, p.seq, p.record_id, p.digest, p.pseudonym, p.scene, p.ref,
        p.kind, p.start_ms, p.end_ms, p.day_cn, p.computed_g, p.methodology, p.detail, p.checks,
        p.day_max_g, p.day_max_count, p.month_max_g, p.month_max_count,
        p.record_id is null or p.platform is null
            or arrays_overlap(p.checks, array({_UNKEYED})) as unkeyed
    from prepared p
),
firsts as (
    select record_id, min(seq) as first_seq, min_by(digest, seq) as first_digest
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
    left join firsts f on f.record_id = c.record_id and not c.unkeyed
    left join stored_records e on e.record_id = c.record_id and not c.unkeyed
)
select * from classified
"""

# Reads `classified` (above) and the stored views; decides every new record.
NEW_SQL = f"""
with new_rows as (
    select * from classified where role = 'new'
),
ref_first as (
    -- Every record that holds a claim: stored ones (not rejected) and new ones not rejected.
    select scene, ref, min(seq) as first_seq from (
        select seq, scene, ref from stored_ref_claims
        union all
        select seq, scene, ref from new_rows where size(checks) = 0 and ref is not null)
    group by scene, ref
),
ref_dups as (
    -- The earliest claim of a (scene, ref) is earlier than a record unless it is the record.
    select n.seq, f.first_seq as dup_of
    from new_rows n join ref_first f on f.scene = n.scene and f.ref = n.ref
    where size(n.checks) = 0 and f.first_seq < n.seq
),
trip_claims as (
    select seq, pseudonym, start_ms, end_ms, {_bucket("start_ms")} as bucket from (
        select seq, pseudonym, start_ms, end_ms from stored_trip_claims
        union all
        select seq, pseudonym, start_ms, end_ms from new_rows
        where size(checks) = 0 and end_ms is not null)
),
new_trips as (
    select n.seq, n.pseudonym, n.start_ms, n.end_ms, {_bucket("n.start_ms")} + b.step as bucket
    from new_rows n lateral view explode(array(-1, 0, 1)) b as step
    where size(n.checks) = 0 and n.kind = 'trip'
),
overlap_dups as (
    select n.seq, min(c.seq) as dup_of
    from new_trips n join trip_claims c
      on c.pseudonym = n.pseudonym and c.bucket = n.bucket
    where c.start_ms < n.end_ms and n.start_ms < c.end_ms and c.seq < n.seq
      and 2 * (least(c.end_ms, n.end_ms) - greatest(c.start_ms, n.start_ms))
          > least(c.end_ms - c.start_ms, n.end_ms - n.start_ms)
    group by n.seq
),
usage_month as (
    select pseudonym, scene, trunc(day, 'MM') as month, sum(g) as g, sum(n) as n
    from stored_usage group by pseudonym, scene, trunc(day, 'MM')
),
decided as (
    select n.*,
        r.dup_of as ref_dup_of, o.dup_of as overlap_dup_of,
        case when size(n.checks) > 0 then 'rejected'
             when r.dup_of is not null or o.dup_of is not null then 'duplicate'
             else 'eligible' end as outcome,
        n.day_cn as day, trunc(n.day_cn, 'MM') as month
    from new_rows n
    left join ref_dups r on r.seq = n.seq
    left join overlap_dups o on o.seq = n.seq
),
counted as (
    select d.*,
        coalesce(ud.n, 0) + row_number() over (
            partition by d.pseudonym, d.scene, d.day order by d.seq) as day_rank,
        coalesce(ud.g, 0) as day_prior_g
    from decided d
    left join stored_usage ud
      on ud.pseudonym = d.pseudonym and ud.scene = d.scene and ud.day = d.day
    where d.outcome = 'eligible'
),
month_counted as (
    select d.*,
        min(coalesce(d.day_max_g, -1)) over m <> max(coalesce(d.day_max_g, -1)) over m
            or min(coalesce(d.month_max_g, -1)) over m <> max(coalesce(d.month_max_g, -1)) over m
            as mixed_caps,
        (day_max_count is null or day_rank <= day_max_count)
            and (month_max_count is null or coalesce(um.n, 0) + row_number() over (
                partition by d.pseudonym, d.scene, d.month order by d.seq) <= month_max_count)
            as within_count,
        coalesce(um.g, 0) as month_prior_g
    from counted d
    left join usage_month um
      on um.pseudonym = d.pseudonym and um.scene = d.scene and um.month = d.month
    window m as (partition by d.pseudonym, d.scene, d.month)
),
day_summed as (
    select *,
        case when within_count then computed_g else 0 end as g0,
        sum(case when within_count then computed_g else 0 end) over (
            partition by pseudonym, scene, day order by seq
            rows between unbounded preceding and current row) as day_cum
    from month_counted
),
day_capped as (
    -- Greedy crediting under a cap has a closed form: what the cumulative total gains below
    -- the cap when this record is added.
    select *,
        case when not within_count then 0
             when day_max_g is null then computed_g
             else greatest(0, least(day_prior_g + day_cum, day_max_g)
                              - least(day_prior_g + day_cum - g0, day_max_g))
        end as after_day
    from day_summed
),
month_summed as (
    select *, sum(after_day) over (
        partition by pseudonym, scene, month order by seq
        rows between unbounded preceding and current row) as month_cum
    from day_capped
),
capped as (
    select seq, mixed_caps,
        case when month_max_g is null then after_day
             else greatest(0, least(month_prior_g + month_cum, month_max_g)
                              - least(month_prior_g + month_cum - after_day, month_max_g))
        end as credited_g
    from month_summed
),
new_final as (
    select d.file, d.chunk, d.row, d.seq,
        case when d.outcome = 'rejected' then null else d.methodology end as methodology,
        case d.outcome when 'eligible' then 'credited' else d.outcome end as status,
        array_join(case
            when d.outcome = 'rejected' then d.checks
            when d.outcome = 'duplicate' then filter(array(
                case when d.ref_dup_of is not null then '{Reason.DUPLICATE_REF}' end,
                case when d.overlap_dup_of is not null then '{Reason.DUPLICATE_OVERLAP}' end),
                x -> x is not null)
            when c.credited_g < d.computed_g then array('{Reason.CAPPED}')
            else {_NO_REASONS} end, ';') as reason,
        d.detail,
        cast(coalesce(c.credited_g, 0) as bigint) as reduction_g,
        case when d.outcome = 'duplicate' then least(d.ref_dup_of, d.overlap_dup_of) end
            as duplicate_of,
        '{Role.NEW}' as role,
        d.seq as receipt_seq,
        coalesce(c.mixed_caps, false) as mixed_caps
    from decided d left join capped c on c.seq = d.seq
)
select * from new_final
"""

# Reads `classified` and `new_final`: replays, conflicts and unkeyed records.
OTHERS_SQL = f"""
select cl.file, cl.chunk, cl.row, cl.seq,
        case cl.role when 'replay_stored' then e.methodology
                     when 'repeat' then nf.methodology end as methodology,
        case cl.role when 'replay_stored' then e.status
                     when 'repeat' then nf.status else 'rejected' end as status,
        case cl.role when 'replay_stored' then e.reason
                     when 'repeat' then nf.reason
                     when 'unkeyed' then array_join(cl.checks, ';')
                     else '{Reason.CONFLICT}' end as reason,
        case cl.role when 'replay_stored' then e.detail
                     when 'repeat' then nf.detail
                     when 'unkeyed' then cl.detail else '' end as detail,
        case cl.role when 'replay_stored' then e.reduction_g
                     when 'repeat' then nf.reduction_g else 0 end as reduction_g,
        case cl.role when 'replay_stored' then e.duplicate_of
                     when 'repeat' then nf.duplicate_of end as duplicate_of,
        case when cl.role in ('replay_stored', 'repeat') then '{Role.REPLAY}'
             when cl.role in ('conflict_stored', 'conflict_repeat') then '{Role.CONFLICT}'
             else '{Role.UNKEYED}' end as role,
        case when cl.role in ('replay_stored', 'conflict_stored') then cl.stored_seq
             when cl.role in ('repeat', 'conflict_repeat') then cl.first_seq end as receipt_seq,
        false as mixed_caps
    from classified cl
    left join stored_records e on e.seq = cl.stored_seq
    left join new_final nf on nf.seq = cl.first_seq
    where cl.role <> 'new'
"""

JOB_CITIZENS_SQL = "select distinct pseudonym from prepared where pseudonym is not null"


def history_sql(platform_id: int) -> dict[str, str]:
    """The views of the stored history an ingest of this platform can meet, from the claims
    store (`stored_all`: every platform's records), the ingest's records (`prepared`) and its
    citizens (`job_citizens`, `JOB_CITIZENS_SQL`).

    Each is a semi-join of the store with the distinct keys of the ingest: a small ingest's
    keys are broadcast and the store is only scanned, never shuffled; no rule reads a stored
    record none of its keys can meet."""
    return {
        "stored_records": f"""
        select s.record_id, s.seq, s.digest, s.status, s.reason, s.detail, s.reduction_g,
            s.methodology, s.duplicate_of
        from stored_all s left semi join (
            select distinct record_id from prepared where record_id is not null) k
          on s.record_id = k.record_id
        where s.platform_id = {int(platform_id)}
    """,
        "stored_ref_claims": """
        select s.seq, s.scene, s.ref
        from stored_all s left semi join (
            select distinct scene, ref from prepared where ref is not null) k
          on s.scene = k.scene and s.ref = k.ref
        where s.status <> 'rejected'
    """,
        "stored_trip_claims": """
        select s.seq, s.pseudonym, s.start_ms, s.end_ms
        from stored_all s left semi join job_citizens k on s.pseudonym = k.pseudonym
        where s.status <> 'rejected' and s.end_ms is not null
    """,
        "stored_usage": f"""
        select s.pseudonym, s.scene, {china_day("s.start_ms")} as day, sum(s.reduction_g) as g,
            count(*) as n
        from stored_all s left semi join job_citizens k on s.pseudonym = k.pseudonym
        where s.status = 'credited' or s.status = 'held'
        group by s.pseudonym, s.scene, {china_day("s.start_ms")}
    """,
    }


def grams_by_the_statement(
    mixed: Iterable[Candidate], usage: Mapping[tuple[object, str, date], Usage]
) -> dict[int, int]:
    """The grams of credited records whose month meets several caps, in receive order, as
    `domain.settlement` states it, from the usage stored before them (per citizen, scene and
    China day). Returns grams by seq."""
    ordered = sorted(mixed, key=lambda c: c.seq)
    months = {(c.citizen, c.scene, month_of(c.day)) for c in ordered if c.day is not None}
    book = Book.of(
        usage_by_day={
            key: used for key, used in usage.items() if (key[0], key[1], month_of(key[2])) in months
        }
    )
    return {c.seq: book.credit_within_caps(c) for c in ordered}
