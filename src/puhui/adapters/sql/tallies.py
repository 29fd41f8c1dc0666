"""Statistics kept as records are settled, so that published figures cost the same to read
with a thousand records or a billion.

Each settled chunk adds its records to `tallies`, in the chunk's own transaction: per value of
each dimension, the records and their grams by status and reason (grams credited, or pending on
the rows of held records; 0 on the others), and the distinct citizens credited. A citizen is
counted once per value, however many chunks credit them: for a day or a month, the chunk's own
lookup of what its citizens were credited in the chunk's months (the usage that caps are
checked against) tells who was counted before; for the values that last longer,
`tally_members` remembers, in one row per citizen, the values the citizen is counted in
(`all=`, `platform=3`, `region=110105`, …), so that a new citizen costs one row, not one per
value, and a citizen counted before is read once and written only when counted somewhere new.

Dimensions:
- `all` (key '') and `platform` (the platform's id): every record, by status and reason;
- `pair` ('reporter>first', platform ids): duplicates, by the reporting platform, the platform
  whose record was received first, and the reason;
- `region`, `province`, `scene`, `day` and `month` (Asia/Shanghai, of the behaviour's start):
  credited records only, reason ''.

Participants are on the row of status `credited` and reason '' of a value (a row with no
records of its own when all of the value's credits were capped).

A held record (spec v1.1) counts in `all` and `platform` only, by status `held` and the reasons
that held it. When it ends, credited or rejected, in a later transaction, `resolve` moves it to
its final status in every dimension, participants included.

Settlement counts a chunk from its rows in Arrow (`add`); `rebuild` and `mismatches` recount
every stored record in SQL, the first for records stored before tallies existed (migration
0005), the second for `puhui ledger verify`, which reports every tally that differs.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import Connection, text

from puhui.adapters.sql import bulk
from puhui.domain import china_time

# Dimensions counting credited records only; with `all` and `platform` they count participants.
CREDITED_ONLY = ("region", "province", "scene", "day", "month")
WITH_PARTICIPANTS = ("all", "platform", *CREDITED_ONLY)
# Participants counted from the chunk's own usage lookup (the rest through `tally_members`).
FROM_USAGE = ("day", "month")
MEMBER_DIMENSIONS = tuple(d for d in WITH_PARTICIPANTS if d not in FROM_USAGE)
# Chunks of up to this many records are counted in Python; larger ones in Arrow. Measured in
# API groups of new citizens: Python 1.4 ms for 200 records, 3.5 ms for 500, 12.1 ms for 1 600;
# Arrow 3.2, 3.9 and 7.0 ms.
SMALL_CHUNK = 700
# A `usage` column, when there is one, of the records credited (not held) in a row: only those
# rows tell that a citizen was counted already (caps count held records too).
CREDITED_N = "credited_n"
# The statuses a record may be resolved from: counted in `all` and `platform` only.
RESOLVABLE = ("held", "rejected")
_ADD_COUNTS = (
    "on conflict (dimension, key, status, reason) do update "
    "set records = tallies.records + excluded.records, grams = tallies.grams + excluded.grams"
)
_ADD_PARTICIPANTS = (
    "on conflict (dimension, key, status, reason) do update "
    "set participants = tallies.participants + excluded.participants"
)


def keys(dialect: str) -> dict[str, str]:
    """The SQL expression of each dimension's key over `records r` (not `pair`)."""
    seconds = f"(r.start_ms + {china_time.OFFSET_MS}) / 1000"
    if dialect == "sqlite":
        day = f"date({seconds}, 'unixepoch')"
        month = f"strftime('%Y-%m', {seconds}, 'unixepoch')"
    else:
        local = f"to_timestamp({seconds}) at time zone 'UTC'"
        day = f"to_char({local}, 'YYYY-MM-DD')"
        month = f"to_char({local}, 'YYYY-MM')"
    return {
        "all": "''",
        "platform": "cast(r.platform_id as varchar(12))",
        "region": "r.region",
        "province": "substr(r.region, 1, 2) || '0000'",
        "scene": "r.scene",
        "day": day,
        "month": month,
    }


def _rows(dialect: str, where: str) -> str:
    """One row per record and dimension it counts in: dimension, key, status, reason, grams,
    subject_id, for the records matching `where` (over `records r`)."""
    key = keys(dialect)
    parts = [
        f"select '{d}' as dimension, {key[d]} as key, r.status, r.reason, "
        f"r.reduction_g as grams, r.subject_id from records r where {where}"
        for d in ("all", "platform")
    ]
    parts += [
        f"select '{d}', {key[d]}, r.status, '', r.reduction_g, r.subject_id from records r "
        f"where {where} and r.status = 'credited'"
        for d in CREDITED_ONLY
    ]
    parts.append(_pair_rows(where))
    return " union all ".join(parts)


def _pair_rows(where: str) -> str:
    """The `pair` rows of the duplicates matching `where`, in the columns of `_rows`."""
    return (
        "select 'pair' as dimension, cast(r.platform_id as varchar(12)) || '>' "
        "|| cast(f.platform_id as varchar(12)) as key, r.status, r.reason, 0 as grams, "
        "r.subject_id from records r join records f on f.seq = r.duplicate_of "
        f"where {where} and r.status = 'duplicate'"
    )


def _participant_rows(
    dialect: str, where: str, dimensions: tuple[str, ...] = WITH_PARTICIPANTS
) -> str:
    """The distinct (dimension, key, subject_id) credited among the records matching `where`."""
    counted = ", ".join(f"'{d}'" for d in dimensions)
    return (
        f"select distinct x.dimension, x.key, x.subject_id from ({_rows(dialect, where)}) x "
        f"where x.status = 'credited' and x.dimension in ({counted})"
    )


def add(
    conn: Connection,
    platform_id: int,
    stored: pa.Table,
    first_seq: int,
    last_seq: int,
    usage: pa.Table,
    registered: AbstractSet[int] = frozenset(),
) -> None:
    """Count the records just stored (seq in [first_seq, last_seq], all of one platform; columns
    of `records`), in the caller's transaction.

    `registered`: the citizens the chunk registered (counted nowhere before it).

    `usage` is what the chunk's citizens were credited before it, per scene and China day, over
    whole months around the chunk's records (the `usage_day` lookup settlement checked caps
    against): a citizen with a credit on a day, or in a month, was counted for it already. It
    must count credited records only, or say in a column `credited_n` how many of a row's
    records were credited (a held record counts towards caps, not as a participation).

    The chunk's own rows are counted in Python (small chunks) or Arrow; only the platforms of
    duplicates' first reports and whether a citizen was counted before for the longer-lived
    values are read from the database."""
    if CREDITED_N in usage.column_names:
        usage = usage.filter(pc.greater(usage.column(CREDITED_N), 0))
    if stored.num_rows <= SMALL_CHUNK:
        deltas, members, first = _counted_in_python(platform_id, stored, usage)
    else:
        deltas, members, first = _counted_in_arrow(platform_id, stored, usage)
    if pc.any(pc.equal(stored.column("status"), "duplicate")).as_py():
        for d, k, s, r, n in conn.execute(
            text(
                "select x.dimension, x.key, x.status, x.reason, count(*) "
                f"from ({_pair_rows('r.seq between :lo and :hi')}) x "
                "group by x.dimension, x.key, x.status, x.reason"
            ),
            {"lo": first_seq, "hi": last_seq},
        ):
            deltas[(d, k, s, r)] = [int(n), 0, 0]
    firsts = Counter(first) + _new_members(conn, members, registered)
    for (d, k), n in firsts.items():
        deltas.setdefault((d, k, "credited", ""), [0, 0, 0])[2] += n
    _write(conn, deltas)


def _write(conn: Connection, deltas: Deltas) -> None:
    """Add these deltas (records, grams, participants) to their tallies, in key order (the
    lock order of concurrent writers). One statement per 500 tallies (each changes once: no
    key twice in one statement)."""
    rows = sorted((key, delta) for key, delta in deltas.items() if any(delta))
    for i in range(0, len(rows), 500):
        part = rows[i : i + 500]
        values = ", ".join(
            f"(:d{j}, :k{j}, :s{j}, :r{j}, :n{j}, :g{j}, :p{j})" for j in range(len(part))
        )
        params: dict[str, object] = {}
        for j, ((d, k, st, r), (n, g, p)) in enumerate(part):
            params |= {f"d{j}": d, f"k{j}": k, f"s{j}": st, f"r{j}": r}
            params |= {f"n{j}": n, f"g{j}": g, f"p{j}": p}
        bulk.execute(
            conn,
            "insert into tallies (dimension, key, status, reason, records, grams, "
            f"participants) values {values} "
            "on conflict (dimension, key, status, reason) do update "
            "set records = tallies.records + excluded.records, "
            "grams = tallies.grams + excluded.grams, "
            "participants = tallies.participants + excluded.participants",
            params,
        )


Deltas = dict[tuple[str, str, str, str], list[int]]
Member = tuple[str, str, int]
# The citizens a chunk credits, by (dimension, key) of `MEMBER_DIMENSIONS`, each list ascending.
Members = dict[tuple[str, str], list[int]]


def _tallied_in(
    platform: str, status: str, reason: str, region: str, scene: str, day: str
) -> list[tuple[str, str, str, str]]:
    """The tallies (dimension, key, status, reason) a record counts in (not `pair`): every
    record in `all` and its platform's, by its status and reason; a credited one also in its
    region, province, scene, China day (YYYY-MM-DD) and month, with reason ''."""
    tallied = [("all", "", status, reason), ("platform", platform, status, reason)]
    if status == "credited":
        tallied += [
            (d, k, status, "")
            for d, k in (
                ("region", region),
                ("province", region[:2] + "0000"),
                ("scene", scene),
                ("day", day),
                ("month", day[:7]),
            )
        ]
    return tallied


def _add(deltas: Deltas, tallied: list[tuple[str, str, str, str]], n: int, grams: int) -> None:
    """Add `n` records of `grams` in all to each of these tallies."""
    for key in tallied:
        tally = deltas.setdefault(key, [0, 0, 0])
        tally[0] += n
        tally[1] += grams


def _counted_in_python(
    platform_id: int, stored: pa.Table, usage: pa.Table
) -> tuple[Deltas, Members, list[tuple[str, str]]]:
    """What a small chunk adds: (dimension, key, status, reason) → [records, grams, 0]; the
    citizens it credits per value of `MEMBER_DIMENSIONS`; and the (dimension, key) of each
    citizen credited on a day or in a month for the first time."""
    deltas: Deltas = {}
    members: set[Member] = set()
    days: set[Member] = set()
    platform = str(platform_id)
    columns = ("status", "reason", "reduction_g", "subject_id", "region", "scene", "start_ms")
    for status, reason, grams, subject, region, scene, start in zip(
        *(stored.column(c).to_pylist() for c in columns), strict=True
    ):
        day = china_time.day_of_ms(start).isoformat() if status == "credited" else ""
        tallied = _tallied_in(platform, status, reason or "", region, scene, day)
        _add(deltas, tallied, 1, grams)
        if status != "credited":
            continue
        members.update((d, k, subject) for d, k, _, _ in tallied if d in MEMBER_DIMENSIONS)
        days.update((("day", day, subject), ("month", day[:7], subject)))
    before: set[Member] = set()
    for subject, day in zip(
        usage.column("subject_id").to_pylist(), usage.column("day").to_pylist(), strict=True
    ):
        before.update((("day", day.isoformat(), subject), ("month", day.isoformat()[:7], subject)))
    grouped: Members = {}
    for d, k, subject in sorted(members):
        grouped.setdefault((d, k), []).append(subject)
    return deltas, grouped, [(d, k) for d, k, s in days - before]


def _counted_in_arrow(
    platform_id: int, stored: pa.Table, usage: pa.Table
) -> tuple[Deltas, Members, list[tuple[str, str]]]:
    """`_counted_in_python` for a large chunk: its records grouped once in Arrow by what every
    dimension's key is made of (status, reason, region, scene, China day), and those few groups
    added up per value; the citizens of each value grouped in Arrow."""
    local_day = pc.divide(
        pc.add(stored.column("start_ms"), china_time.OFFSET_MS), china_time.DAY_MS
    )
    base = pa.table(
        {
            "status": stored.column("status"),
            "reason": pc.fill_null(stored.column("reason"), ""),
            "region": stored.column("region"),
            "scene": stored.column("scene"),
            "day": local_day.cast(pa.int32()).cast(pa.date32()).cast(pa.string()),
            "grams": stored.column("reduction_g"),
            "subject_id": stored.column("subject_id").cast(pa.int64()),
        }
    )
    groups = base.group_by(["status", "reason", "region", "scene", "day"]).aggregate(
        [("grams", "sum"), ("grams", "count")]
    )
    deltas: Deltas = {}
    platform = str(platform_id)
    columns = ("status", "reason", "region", "scene", "day", "grams_count", "grams_sum")
    for status, reason, region, scene, day, n, grams in bulk.rows_of(groups, columns):
        _add(deltas, _tallied_in(platform, status, reason, region, scene, day), n, grams)
    credited = base.filter(pc.equal(base.column("status"), "credited"))
    credited = credited.append_column(
        "province",
        pc.binary_join_element_wise(
            pc.utf8_slice_codeunits(credited.column("region"), 0, 2), "0000", ""
        ),
    )
    citizens = sorted(pc.unique(credited.column("subject_id")).to_pylist())
    members: Members = {("all", ""): citizens, ("platform", platform): citizens} if citizens else {}
    for dimension in ("region", "province", "scene"):
        values = credited.group_by(dimension).aggregate([("subject_id", "distinct")])
        for k, subjects in bulk.rows_of(values, (dimension, "subject_id_distinct")):
            members[(dimension, k)] = sorted(subjects)
    return deltas, members, _first_of_days(credited, usage)


def _new_members(
    conn: Connection, members: Members, registered: AbstractSet[int]
) -> Counter[tuple[str, str]]:
    """Remember the values each of the chunk's citizens is counted in (`tally_members`); how
    many citizens each value counts for the first time. Only the rows of citizens known before
    the chunk are read; a row is written for a new citizen and for one counted somewhere new."""
    counted: dict[int, list[str]] = {}
    for (d, k), subjects in members.items():
        entry = f"{d}={k}"
        for subject in subjects:
            counted.setdefault(subject, []).append(entry)
    added: Counter[tuple[str, str]] = Counter()
    if not counted:
        return added
    stored = _stored_members(conn, sorted(s for s in counted if s not in registered))
    for (d, k), subjects in members.items():
        entry = f"{d}={k}"
        added[(d, k)] = (
            sum(1 for s in subjects if entry not in stored.get(s, ())) if stored else len(subjects)
        )
    # Citizens counted in the same values share one encoding (most of a chunk's do).
    encoded: dict[tuple[str, ...], str] = {}
    inserts: list[tuple[int, str]] = []
    updates: list[tuple[int, str]] = []
    for subject, entries in sorted(counted.items()):
        before = stored.get(subject)
        if before is None:
            key = tuple(entries)
            if key not in encoded:
                encoded[key] = _encode(set(entries))
            inserts.append((subject, encoded[key]))
        elif not before.issuperset(entries):
            updates.append((subject, _encode(before.union(entries))))
    bulk.insert_rows(conn, "tally_members", ("subject_id", "counted"), inserts)
    if not updates:
        return added
    if conn.dialect.name == "sqlite":
        # Counted values are written by puhui (no NUL): one JSON array of the changed rows.
        bulk.execute(
            conn,
            "update tally_members set counted = j.value ->> 1 from json_each(:rows) j "
            "where tally_members.subject_id = j.value ->> 0",
            {"rows": json.dumps(updates)},
        )
    else:
        ids, values = zip(*updates, strict=True)
        bulk.execute(
            conn,
            "update tally_members t set counted = v.counted "
            "from unnest(cast(:s as integer[]), cast(:c as text[])) v (subject_id, counted) "
            "where t.subject_id = v.subject_id",
            {"s": list(ids), "c": list(values)},
        )
    return added


def _stored_members(conn: Connection, subjects: Sequence[int]) -> dict[int, set[str]]:
    """The values each of these citizens is counted in, for those counted anywhere."""
    if not subjects:
        return {}
    if conn.dialect.name == "sqlite":
        # One parameter, whatever the number of citizens: a JSON array of their ids.
        rows, _ = bulk.execute(
            conn,
            "select t.subject_id, t.counted from json_each(:s) j "
            "join tally_members t on t.subject_id = j.value",
            {"s": json.dumps(list(subjects))},
        )
    else:
        rows, _ = bulk.execute(
            conn,
            "select subject_id, counted from tally_members where subject_id = any(:s)",
            {"s": list(subjects)},
        )
    return {subject: _decode(counted) for subject, counted in rows}


def _encode(entries: AbstractSet[str]) -> str:
    """A citizen's values as stored: `dimension=key` entries, sorted, comma-separated (no key
    holds a comma: keys are ids, region codes and scene codes)."""
    return ",".join(sorted(entries))


def _decode(counted: str) -> set[str]:
    return set(counted.split(",")) if counted else set()


def _first_of_days(credited: pa.Table, usage: pa.Table) -> list[tuple[str, str]]:
    """The (dimension, key) of each citizen credited on a day or in a month for the first
    time: credited in the chunk (`subject_id`, `day` as text), and without a credit that day,
    or that month, in the usage before it."""
    before = _periods(usage.column("subject_id"), usage.column("day").cast(pa.string()))
    days = credited.select(["subject_id", "day"]).group_by(["subject_id", "day"]).aggregate([])
    first = (
        _periods(days.column("subject_id"), days.column("day"))
        .group_by(["dimension", "key", "subject_id"])
        .aggregate([])
        .join(before, ["dimension", "key", "subject_id"], join_type="left anti")
    )
    return list(
        zip(first.column("dimension").to_pylist(), first.column("key").to_pylist(), strict=True)
    )


def _periods(subjects: pa.ChunkedArray, days: pa.ChunkedArray) -> pa.Table:
    """(dimension, key, subject_id) of the day and of the month of each (citizen, day)."""
    n = len(subjects)
    return pa.table(
        {
            "subject_id": pa.concat_arrays([subjects.combine_chunks().cast(pa.int64())] * 2),
            "dimension": pa.array(["day"] * n + ["month"] * n, pa.string()),
            "key": pa.concat_arrays(
                [
                    days.combine_chunks().cast(pa.string()),
                    pc.utf8_slice_codeunits(days, 0, 7).combine_chunks().cast(pa.string()),
                ]
            ),
        }
    )


def resolve(conn: Connection, changed: Sequence[tuple[int, str, str, int]]) -> None:
    """Move resolved records from what they were counted as to what they are now, in the
    resolving transaction, after their rows in `records` were updated.

    `changed`: (seq, old status, old reason, old reduction_g) of each record, whose old status
    is `held` (or `rejected`: counted, like a held record, in `all` and `platform` only); its
    new status, reason and grams are read from `records`. The old counts are taken away and the
    new ones added in every dimension; a record now credited adds its citizen as a participant
    wherever the citizen was not counted before (`tally_members` for the longer-lived values;
    for a day or a month, the citizen's other credited records of it). Tallies left with
    nothing are deleted. A resolution credits, it never takes a credit back, so participants
    only grow.

    Set-based whatever the number of records: a few statements for the whole batch. The caller
    serialises it with settlement (as settlement chunks are with each other), since who was
    counted before is read, not locked."""
    old: dict[int, tuple[str, str, int]] = {}
    for seq, status, reason, grams in changed:
        if status not in RESOLVABLE:
            raise ValueError(f"record {seq} was {status}: only {RESOLVABLE} can be resolved")
        if seq in old:
            raise ValueError(f"record {seq} is resolved twice")
        old[seq] = (status, reason, grams)
    if not old:
        return
    where, params = _seq_in(conn.dialect.name, sorted(old))
    rows, _ = bulk.execute(
        conn,
        "select r.seq, r.platform_id, r.status, r.reason, r.reduction_g, r.subject_id, "
        f"r.region, r.scene, r.start_ms from records r where {where}",
        params,
    )
    if len(rows) != len(old):
        missing = sorted(set(old) - {int(r[0]) for r in rows})
        raise ValueError(f"records not stored: {missing[:10]}")
    deltas: Deltas = {}
    members: set[Member] = set()
    credited: Counter[tuple[int, date]] = Counter()
    for seq, platform_id, status, reason, grams, subject, region, scene, start in rows:
        platform = str(platform_id)
        was, was_reason, was_grams = old[int(seq)]
        _add(deltas, _tallied_in(platform, was, was_reason, "", "", ""), -1, -was_grams)
        day = china_time.day_of_ms(start) if status == "credited" else None
        tallied = _tallied_in(
            platform, status, reason or "", region, scene, "" if day is None else day.isoformat()
        )
        _add(deltas, tallied, 1, grams)
        if day is not None:
            members.update((d, k, subject) for d, k, _, _ in tallied if d in MEMBER_DIMENSIONS)
            credited[(subject, day)] += 1
    if any(r[2] == "duplicate" for r in rows):
        found, _ = bulk.execute(
            conn,
            "select x.dimension, x.key, x.status, x.reason, count(*) "
            f"from ({_pair_rows(where)}) x group by x.dimension, x.key, x.status, x.reason",
            params,
        )
        for d, k, s, r, n in found:
            deltas.setdefault((d, k, s, r), [0, 0, 0])[0] += int(n)
    grouped: Members = {}
    for d, k, subject in sorted(members):
        grouped.setdefault((d, k), []).append(subject)
    firsts = _new_members(conn, grouped, frozenset()) + _first_days(conn, credited)
    for (d, k), n in firsts.items():
        deltas.setdefault((d, k, "credited", ""), [0, 0, 0])[2] += n
    _write(conn, deltas)
    _drop_empty(conn, sorted(key for key, delta in deltas.items() if delta[0] < 0))


def _seq_in(dialect: str, seqs: Sequence[int]) -> tuple[str, dict[str, object]]:
    """A condition on `records r` that its seq is one of these, with its one parameter."""
    if dialect == "sqlite":
        return "r.seq in (select j.value from json_each(:seqs) j)", {"seqs": json.dumps(seqs)}
    return "r.seq = any(cast(:seqs as bigint[]))", {"seqs": list(seqs)}


def _first_days(conn: Connection, credited: Counter[tuple[int, date]]) -> Counter[tuple[str, str]]:
    """How many citizens each day and month counts for the first time, given the records just
    credited (already so in `records`) per citizen and China day: those of a citizen's day, or
    month, who has no other credited record in it."""
    firsts: Counter[tuple[str, str]] = Counter()
    if not credited:
        return firsts
    # Each citizen's credited records over the months of the new credits, per China day.
    starts = {(subject, china_time.day_start_ms(day)) for subject, day in credited}
    ranges = sorted(
        {(s, china_time.month_start_ms(ms), china_time.next_month_ms(ms)) for s, ms in starts}
    )
    count = (
        "select k.s, (r.start_ms + :cn) / :day as d, count(*) from {source} "
        "cross join records r where r.subject_id = k.s and r.start_ms >= k.lo "
        "and r.start_ms < k.hi and r.status = 'credited' group by k.s, (r.start_ms + :cn) / :day"
    )
    params: dict[str, object] = {"cn": china_time.OFFSET_MS, "day": china_time.DAY_MS}
    if conn.dialect.name == "sqlite":
        source = (
            "(select j.value ->> 0 as s, j.value ->> 1 as lo, j.value ->> 2 as hi "
            "from json_each(:ranges) j) k"
        )
        params["ranges"] = json.dumps(ranges)
    else:
        source = (
            "unnest(cast(:s as integer[]), cast(:lo as bigint[]), cast(:hi as bigint[])) "
            "k (s, lo, hi)"
        )
        params |= dict(zip(("s", "lo", "hi"), map(list, zip(*ranges, strict=True)), strict=True))
    rows, _ = bulk.execute(conn, count.format(source=source), params)
    # Credited records of each citizen's day and month, the new ones included.
    days: Counter[tuple[int, date]] = Counter()
    months: Counter[tuple[int, str]] = Counter()
    for subject, number, n in rows:
        day = china_time.EPOCH + timedelta(days=int(number))
        days[(int(subject), day)] += int(n)
        months[(int(subject), day.isoformat()[:7])] += int(n)
    new_in_month: Counter[tuple[int, str]] = Counter()
    for (subject, day), n in credited.items():
        new_in_month[(subject, day.isoformat()[:7])] += n
        if days[(subject, day)] == n:
            firsts[("day", day.isoformat())] += 1
    for (subject, month), n in new_in_month.items():
        if months[(subject, month)] == n:
            firsts[("month", month)] += 1
    return firsts


def _drop_empty(conn: Connection, touched: Sequence[tuple[str, str, str, str]]) -> None:
    """Delete those of these tallies that count nothing any more (all of a value's held records
    resolved), as a recount would not have them."""
    for i in range(0, len(touched), 500):
        part = touched[i : i + 500]
        values = ", ".join(f"(:d{j}, :k{j}, :s{j}, :r{j})" for j in range(len(part)))
        params: dict[str, object] = {}
        for j, (d, k, st, r) in enumerate(part):
            params |= {f"d{j}": d, f"k{j}": k, f"s{j}": st, f"r{j}": r}
        bulk.execute(
            conn,
            "delete from tallies where records = 0 and grams = 0 and participants = 0 "
            f"and (dimension, key, status, reason) in (values {values})",
            params,
        )


def rebuild(conn: Connection) -> None:
    """Recount every stored record from scratch, in the database."""
    rebuild_counts(conn)
    rebuild_members(conn)


def rebuild_counts(conn: Connection) -> None:
    """Recount the tallies (not their members) from every stored record."""
    conn.execute(text("delete from tallies"))
    dialect = conn.dialect.name
    conn.execute(
        text(
            "insert into tallies (dimension, key, status, reason, records, grams, participants) "
            "select x.dimension, x.key, x.status, x.reason, count(*), sum(x.grams), 0 "
            f"from ({_rows(dialect, '1 = 1')}) x "
            # `having true` lets SQLite tell the upsert clause from a join.
            f"group by x.dimension, x.key, x.status, x.reason having true {_ADD_COUNTS}"
        )
    )
    conn.execute(
        text(
            "insert into tallies (dimension, key, status, reason, records, grams, participants) "
            "select p.dimension, p.key, 'credited', '', 0, 0, count(*) "
            f"from ({_participant_rows(dialect, '1 = 1')}) p "
            f"group by p.dimension, p.key having true {_ADD_PARTICIPANTS}"
        )
    )


def rebuild_members(conn: Connection) -> None:
    """Recount, from every stored record, the values each citizen is counted in."""
    conn.execute(text("delete from tally_members"))
    dialect = conn.dialect.name
    entry = "p.dimension || '=' || p.key"
    joined = (
        f"group_concat({entry}, ',')"
        if dialect == "sqlite"
        else f"string_agg({entry}, ',' order by {entry} collate \"C\")"
    )
    conn.execute(
        text(
            f"insert into tally_members (subject_id, counted) select p.subject_id, {joined} "
            f"from (select * from ({_participant_rows(dialect, '1 = 1', MEMBER_DIMENSIONS)}) x "
            # SQLite's group_concat joins in the order of its input.
            "order by x.subject_id, x.dimension || '=' || x.key) p group by p.subject_id"
        )
    )


def mismatches(dialect: str) -> str:
    """A query naming every tally that differs from a recount of `records` (one row each:
    'dimension:key:status:reason'), for `ledger verify`.

    The recount and the tallies, the latter negated, are added up per tally: whatever does
    not come to zero differs (a count missing on either side included)."""
    recount = (
        "select x.dimension, x.key, x.status, x.reason, count(*) as records, "
        f"sum(x.grams) as grams, 0 as participants from ({_rows(dialect, '1 = 1')}) x "
        "group by x.dimension, x.key, x.status, x.reason "
        "union all select p.dimension, p.key, 'credited', '', 0, 0, count(*) "
        f"from ({_participant_rows(dialect, '1 = 1')}) p group by p.dimension, p.key "
        "union all select dimension, key, status, reason, -records, -grams, -participants "
        "from tallies"
    )
    return (
        "select d.dimension || ':' || d.key || ':' || d.status || ':' || d.reason "
        f"from ({recount}) d group by d.dimension, d.key, d.status, d.reason "
        "having sum(d.records) <> 0 or sum(d.grams) <> 0 or sum(d.participants) <> 0"
    )
