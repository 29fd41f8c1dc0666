"""Fraud signals: registered functions over a record and the records received before it.

Each signal looks at a record that settlement would credit (a *judged* record) together with
every valid record received up to it (receive order, `seq`; the record itself included), from
any chunk, file or submission, and fires with what it measured: how many citizens the device
served, how fast the citizen would have moved, … A record some signal fires on is held for a
review (spec v1.1, reason = the signal's code); the measurements are its evidence.

The plain statement of each signal is its Python function; beside it is its rendering in the
portable SQL of the batch engines, a query over two relations:

- `seen`: the valid records the signal may compare (the chunk's, and what the database holds
  of its citizens and devices within the windows), with columns `seq`, `in_chunk`, `judged`,
  `platform_id`, `citizen`, `device`, `scene`, `region`, `start_ms`, `end_ms`, `day` (China
  day number, `china_time`), `amount_milli`, `origin_lat`, `origin_lon`, `dest_lat`,
  `dest_lon`;
- `burst_history`: the stored records of the chunk's platform (`platform_id`) per `region`,
  `scene` and start `minute` (epoch minutes), as counts `n`, over the day before the chunk's
  minutes.

Each query returns `seq` and the two measurements `v1`, `v2` (`v2` may be null) of the judged
records it fires on; tests hold each rendering to its statement. Thresholds come from the
evidence policies (`domain.evidence.Thresholds`, documented in docs/fraud.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from puhui.domain.evidence import Thresholds
from puhui.domain.reasons import Reason
from puhui.domain.rules import EARTH_RADIUS_M, great_circle_m

MINUTE_MS = 60_000
DAY_MINUTES = 1_440


class Seen(NamedTuple):
    """A valid record as the signals read it.

    Attributes:
        seq: receive order.
        platform: the submitting platform's id.
        citizen: the citizen's id (subject id or pseudonym).
        device: the platform's device identifier, None when not sent.
        scene, region: codes.
        start_ms, end_ms: epoch milliseconds, UTC; `end_ms` None for an event.
        day: the China day number of its start (`china_time`).
        amount_milli: metres for trips, thousandths of the unit for events.
        origin_lat, origin_lon, dest_lat, dest_lon: decimal degrees, None where not sent.
    """

    seq: int
    platform: object
    citizen: object
    device: str | None
    scene: str
    region: str
    start_ms: int
    end_ms: int | None
    day: int
    amount_milli: int
    origin_lat: float | None = None
    origin_lon: float | None = None
    dest_lat: float | None = None
    dest_lon: float | None = None

    @property
    def located(self) -> bool:
        """A trip with both its origin and its destination."""
        return self.end_ms is not None and None not in (
            self.origin_lat,
            self.origin_lon,
            self.dest_lat,
            self.dest_lon,
        )


Measured = tuple[int, int | None]
Statement = Callable[[Seen, Sequence[Seen], Thresholds], Measured | None]


@dataclass(frozen=True, slots=True)
class Signal:
    """A registered signal: its reason code, what it means, its statement (`fires`: over a
    judged record and every valid record received up to it, the record included; returns the
    measurements when it fires, None otherwise), its SQL rendering and how its measurements
    read to a reviewer."""

    code: Reason
    doc: str
    fires: Statement
    sql: Callable[[Thresholds], str]
    explain: Callable[[Measured, Thresholds], str]


SIGNALS: dict[Reason, Signal] = {}


def signal(
    code: Reason,
    sql: Callable[[Thresholds], str],
    explain: Callable[[Measured, Thresholds], str],
) -> Callable[[Statement], Statement]:
    """Register the statement of a signal under its reason code."""

    def register(fn: Statement) -> Statement:
        SIGNALS[code] = Signal(code, (fn.__doc__ or "").strip(), fn, sql, explain)
        return fn

    return register


def _hours(ms: int) -> str:
    hours = ms / 3_600_000
    return f"{hours:g} h" if hours < 48 else f"{hours / 24:g} days"


# --- a device used by many citizens ---------------------------------------------------------


def _device_shared_sql(t: Thresholds) -> str:
    return (
        "select r.seq, count(distinct s.citizen) as v1, cast(null as bigint) as v2 "
        "from seen r join seen s on s.device = r.device and s.platform_id = r.platform_id "
        "and s.seq <= r.seq "
        f"and s.start_ms > r.start_ms - {t.device_window_ms} "
        f"and s.start_ms < r.start_ms + {t.device_window_ms} "
        "where r.judged and r.device is not null group by r.seq "
        f"having count(distinct s.citizen) >= {t.device_citizens}"
    )


@signal(
    Reason.DEVICE_SHARED,
    _device_shared_sql,
    lambda m, t: (
        f"its device reported {m[0]} citizens' behaviours within "
        f"{_hours(t.device_window_ms)} of it (threshold {t.device_citizens})"
    ),
)
def device_shared(r: Seen, before: Sequence[Seen], t: Thresholds) -> Measured | None:
    """The record's device reported behaviours of at least `device_citizens` distinct citizens
    starting within `device_window_ms` of this one (a phone farm, or one person's phone used
    for many numbers). Devices are each platform's own identifiers: compared within the
    platform."""
    if r.device is None:
        return None
    citizens = {
        s.citizen
        for s in before
        if s.device == r.device
        and s.platform == r.platform
        and abs(s.start_ms - r.start_ms) < t.device_window_ms
    }
    return (len(citizens), None) if len(citizens) >= t.device_citizens else None


# --- a citizen on many devices ----------------------------------------------------------------


def _device_hopping_sql(t: Thresholds) -> str:
    return (
        "select r.seq, count(distinct s.device) as v1, cast(null as bigint) as v2 "
        "from seen r join seen s on s.citizen = r.citizen and s.platform_id = r.platform_id "
        "and s.seq <= r.seq "
        f"and s.start_ms > r.start_ms - {t.hopping_window_ms} "
        f"and s.start_ms < r.start_ms + {t.hopping_window_ms} "
        "where r.judged and r.device is not null and s.device is not null group by r.seq "
        f"having count(distinct s.device) >= {t.citizen_devices}"
    )


@signal(
    Reason.DEVICE_HOPPING,
    _device_hopping_sql,
    lambda m, t: (
        f"the citizen reported from {m[0]} devices within "
        f"{_hours(t.hopping_window_ms)} of it (threshold {t.citizen_devices})"
    ),
)
def device_hopping(r: Seen, before: Sequence[Seen], t: Thresholds) -> Measured | None:
    """The citizen's records of this platform starting within `hopping_window_ms` of this one
    came from at least `citizen_devices` distinct devices (an account passed around, or devices
    rotated to escape the device signal). Records without a device do not count."""
    if r.device is None:
        return None
    devices = {
        s.device
        for s in before
        if s.citizen == r.citizen
        and s.platform == r.platform
        and s.device is not None
        and abs(s.start_ms - r.start_ms) < t.hopping_window_ms
    }
    return (len(devices), None) if len(devices) >= t.citizen_devices else None


# --- consecutive trips that teleport -------------------------------------------------------


def _jump(r: Seen, s: Seen) -> tuple[float, int] | None:
    """Distance (m) and time (ms) between two located trips that do not overlap, from the end
    of the earlier to the start of the later; None when they overlap."""
    assert r.end_ms is not None
    assert s.end_ms is not None
    if s.end_ms <= r.start_ms:
        first, then, gap = s, r, r.start_ms - s.end_ms
    elif r.end_ms <= s.start_ms:
        first, then, gap = r, s, s.start_ms - r.end_ms
    else:
        return None
    assert first.dest_lat is not None
    assert first.dest_lon is not None
    assert then.origin_lat is not None
    assert then.origin_lon is not None
    return great_circle_m(first.dest_lat, first.dest_lon, then.origin_lat, then.origin_lon), gap


def _velocity_sql(t: Thresholds) -> str:
    def distance(a: str, b: str) -> str:
        return (
            f"(2 * {EARTH_RADIUS_M} * asin(least(1.0, sqrt("
            f"power(sin(radians({b}.origin_lat - {a}.dest_lat) / 2), 2) + "
            f"cos(radians({a}.dest_lat)) * cos(radians({b}.origin_lat)) * "
            f"power(sin(radians({b}.origin_lon - {a}.dest_lon) / 2), 2)))))"
        )

    located = (
        "{x}.end_ms is not null and {x}.origin_lat is not null and {x}.origin_lon is not null "
        "and {x}.dest_lat is not null and {x}.dest_lon is not null"
    )
    jumps = (
        # s ends before r starts: from s's destination to r's origin, and the other way.
        f"select r.seq, {distance('s', 'r')} as m, r.start_ms - s.end_ms as gap "
        f"from seen r join seen s on s.citizen = r.citizen and s.seq < r.seq "
        f"and s.end_ms <= r.start_ms and s.end_ms > r.start_ms - {t.max_gap_ms} "
        f"where r.judged and {located.format(x='r')} and {located.format(x='s')} "
        f"union all select r.seq, {distance('r', 's')}, s.start_ms - r.end_ms "
        f"from seen r join seen s on s.citizen = r.citizen and s.seq < r.seq "
        f"and r.end_ms <= s.start_ms and s.start_ms < r.end_ms + {t.max_gap_ms} "
        f"where r.judged and {located.format(x='r')} and {located.format(x='s')}"
    )
    return (
        "select seq, cast(floor(max(m) / 1000) as bigint) as v1, min(gap) as v2 "
        f"from ({jumps}) j where m >= {t.min_jump_m} and m * 3600 > {t.max_kmh} * gap "
        "group by seq"
    )


@signal(
    Reason.VELOCITY,
    _velocity_sql,
    lambda m, t: (
        f"the citizen would have covered {m[0]} km in "
        f"{(m[1] or 0) // 60_000} min between this trip and another (over {t.max_kmh} km/h)"
    ),
)
def velocity(r: Seen, before: Sequence[Seen], t: Thresholds) -> Measured | None:
    """Between this trip and another of the citizen's located trips received before it, ending
    at most `max_gap_ms` apart, the citizen would have covered at least `min_jump_m` (from the
    earlier trip's destination to the later one's origin) faster than `max_kmh`: the same
    account used in two places at once. Measured: the longest such jump in whole km, and the
    shortest time between such trips."""
    if not r.located:
        return None
    found: list[tuple[float, int]] = []
    for s in before:
        if s.seq == r.seq or s.citizen != r.citizen or not s.located:
            continue
        jump = _jump(r, s)
        if jump is None or jump[1] >= t.max_gap_ms:
            continue
        metres, gap = jump
        if metres >= t.min_jump_m and metres * 3600 > t.max_kmh * gap:
            found.append(jump)
    if not found:
        return None
    return int(max(m for m, _ in found) // 1000), min(g for _, g in found)


# --- counts or volumes far beyond one person's day ----------------------------------------------


def _volume_sql(t: Thresholds) -> str:
    if not t.volume:
        return "select cast(null as bigint) as seq, 0 as v1, 0 as v2 where false"
    records = " ".join(f"when '{s}' then {c.records}" for s, c in t.volume.items())
    amount = " ".join(f"when '{s}' then {c.amount_milli}" for s, c in t.volume.items())
    return (
        "select r.seq, count(*) as v1, sum(s.amount_milli) as v2 from seen r join seen s "
        "on s.citizen = r.citizen and s.scene = r.scene and s.day = r.day and s.seq <= r.seq "
        f"where r.judged and r.scene in ({', '.join(repr(s) for s in t.volume)}) "
        f"group by r.seq, r.scene having count(*) > (case r.scene {records} end) "
        f"or sum(s.amount_milli) > (case r.scene {amount} end)"
    )


@signal(
    Reason.VOLUME_OUTLIER,
    _volume_sql,
    lambda m, t: (
        f"the citizen's {m[0]} records of this scene that day total "
        f"{(m[1] or 0) / 1000:g} units (ceilings in docs/fraud.md)"
    ),
)
def volume_outlier(r: Seen, before: Sequence[Seen], t: Thresholds) -> Measured | None:
    """The citizen's records of this scene on this China day, up to this one, are more than the
    scene's ceiling of records, or amount to more than its ceiling (km walked, kg recycled…):
    more than one person does in a day. Measured: the records and their total amount."""
    ceiling = t.volume.get(r.scene)
    if ceiling is None:
        return None
    same = [s for s in before if s.citizen == r.citizen and s.scene == r.scene and s.day == r.day]
    total = sum(s.amount_milli for s in same)
    if len(same) > ceiling.records or total > ceiling.amount_milli:
        return len(same), total
    return None


# --- bursts at one region and minute ------------------------------------------------------------


def _burst_sql(t: Thresholds) -> str:
    minute = f"(r.start_ms - ((r.start_ms % {MINUTE_MS}) + {MINUTE_MS}) % {MINUTE_MS})"
    same = (
        "s.in_chunk and s.seq <= j.seq and s.platform_id = j.platform_id "
        "and s.region = j.region and s.scene = j.scene"
    )
    stored = "h.platform_id = j.platform_id and h.region = j.region and h.scene = j.scene"
    return (
        "with judged as (select r.seq, r.platform_id, r.region, r.scene, "
        f"cast({minute} / {MINUTE_MS} as bigint) as minute from seen r where r.judged), "
        "chunk_counts as (select j.seq, "
        f"count(case when s.start_ms >= j.minute * {MINUTE_MS} "
        f"and s.start_ms < (j.minute + 1) * {MINUTE_MS} then 1 end) as n_minute, "
        f"count(case when s.start_ms >= (j.minute - {DAY_MINUTES}) * {MINUTE_MS} "
        f"and s.start_ms < j.minute * {MINUTE_MS} then 1 end) as n_day "
        f"from judged j left join seen s on {same} group by j.seq), "
        "stored_counts as (select j.seq, "
        "coalesce(sum(case when h.minute = j.minute then h.n end), 0) as n_minute, "
        f"coalesce(sum(case when h.minute >= j.minute - {DAY_MINUTES} "
        "and h.minute < j.minute then h.n end), 0) as n_day "
        f"from judged j left join burst_history h on {stored} group by j.seq) "
        "select c.seq, c.n_minute + s.n_minute as v1, c.n_day + s.n_day as v2 "
        "from chunk_counts c join stored_counts s on s.seq = c.seq "
        f"where c.n_minute + s.n_minute >= {t.burst_records} "
        f"and (c.n_minute + s.n_minute) * {DAY_MINUTES} > {t.burst_ratio} * (c.n_day + s.n_day)"
    )


@signal(
    Reason.BURST,
    _burst_sql,
    lambda m, t: (
        f"the platform reported {m[0]} records of this scene and region starting in "
        f"this minute, against {m[1] or 0} in the day before"
    ),
)
def burst(r: Seen, before: Sequence[Seen], t: Thresholds) -> Measured | None:
    """The platform's records of this scene and region starting in this record's minute number
    at least `burst_records`, and more than `burst_ratio` times its average per minute over the
    day before that minute: a batch of records made up at once. Measured: the records in the
    minute and in the day before."""
    minute = r.start_ms // MINUTE_MS
    same = [
        s.start_ms // MINUTE_MS
        for s in before
        if s.platform == r.platform and s.region == r.region and s.scene == r.scene
    ]
    in_minute = sum(1 for m in same if m == minute)
    in_day = sum(1 for m in same if minute - DAY_MINUTES <= m < minute)
    if in_minute >= t.burst_records and in_minute * DAY_MINUTES > t.burst_ratio * in_day:
        return in_minute, in_day
    return None


# --- identical repeated trips -------------------------------------------------------------------


def _repeated_sql(t: Thresholds) -> str:
    return (
        "select r.seq, count(*) as v1, cast(null as bigint) as v2 from seen r join seen s "
        "on s.citizen = r.citizen and s.scene = r.scene and s.amount_milli = r.amount_milli "
        "and s.platform_id = r.platform_id and s.device = r.device "
        "and s.end_ms - s.start_ms = r.end_ms - r.start_ms and s.seq <= r.seq "
        f"and s.start_ms > r.start_ms - {t.repeat_window_ms} "
        f"and s.start_ms < r.start_ms + {t.repeat_window_ms} "
        "where r.judged and r.end_ms is not null and r.device is not null "
        "and s.end_ms is not null group by r.seq "
        f"having count(*) >= {t.repeat_times}"
    )


@signal(
    Reason.REPEATED_TRIP,
    _repeated_sql,
    lambda m, t: (
        f"the citizen reported this scene with the same distance and duration "
        f"{m[0]} times within {_hours(t.repeat_window_ms)}"
    ),
)
def repeated_trip(r: Seen, before: Sequence[Seen], t: Thresholds) -> Measured | None:
    """At least `repeat_times` of the citizen's trips of this scene reported from this record's
    device, starting within `repeat_window_ms` of this one, this one included, have the same
    distance (to the metre) and the same duration (to the millisecond as sent): one trip
    recorded once and played back at other times. Trips without a device (a transit card's
    taps: the same two stations give the same fare distance every day) are not compared."""
    if r.end_ms is None or r.device is None:
        return None
    duration = r.end_ms - r.start_ms
    same = [
        s
        for s in before
        if s.citizen == r.citizen
        and s.scene == r.scene
        and s.platform == r.platform
        and s.device == r.device
        and s.end_ms is not None
        and s.amount_milli == r.amount_milli
        and s.end_ms - s.start_ms == duration
        and abs(s.start_ms - r.start_ms) < t.repeat_window_ms
    ]
    return (len(same), None) if len(same) >= t.repeat_times else None


# --- all of them ----------------------------------------------------------------------------


def fired(
    judged: Iterable[int],
    seen: Sequence[Seen],
    t: Thresholds,
    only: Iterable[Reason] | None = None,
) -> dict[int, dict[Reason, Measured]]:
    """The statement: for each judged record (by seq, each one of `seen`), the signals (`only`
    these, when given) that fire on it over the records of `seen` received up to it, with their
    measurements."""
    wanted = set(SIGNALS if only is None else only)
    ordered = sorted(seen, key=lambda s: s.seq)
    by_seq = {s.seq: i for i, s in enumerate(ordered)}
    out: dict[int, dict[Reason, Measured]] = {}
    for seq in judged:
        i = by_seq[seq]
        r, before = ordered[i], ordered[: i + 1]
        found = {
            code: measured
            for code, sig in SIGNALS.items()
            if code in wanted and (measured := sig.fires(r, before, t)) is not None
        }
        if found:
            out[seq] = found
    return out


def sql_of_all(t: Thresholds) -> str:
    """One query over `seen` and `burst_history` returning `code`, `seq`, `v1`, `v2` for every
    signal that fires on a judged record."""
    return " union all ".join(
        f"select '{code.value}' as code, seq, cast(v1 as bigint) as v1, cast(v2 as bigint) as v2 "
        f"from ({sig.sql(t)}) q{i}"
        for i, (code, sig) in enumerate(SIGNALS.items())
    )
