"""Plausibility rules: registered functions that say when a record cannot be true.

Each rule is a plain function registered under its reason code: the statement of when a record
violates it, over the record's normalised values. Beside it is its rendering as a predicate
over the normalised columns of a batch (true where the record violates the rule), written in the
portable SQL the batch engines run (DuckDB on one machine, Spark SQL when scaled out); tests hold
each rendering to its statement. Every rule is evaluated on every record, so a record reports all
its violations, not only the first.

Columns a rule may use: `kind` ('trip' or 'event'), `scene`, `region`, `start_ms`, `end_ms`
(epoch milliseconds, UTC), `amount_milli` (metres for trips; thousandths of the unit for
events), `origin_lat`, `origin_lon`, `dest_lat`, `dest_lon` (decimal degrees, may be null).
Later rules (fraud signals, device anomalies) are added the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from puhui.domain.reasons import Reason

# Fastest credible average speed per mode, km/h, over a whole trip: brisk running for walking,
# a racing cyclist for bikes, urban expressways for buses, the fastest metro lines in service
# (e.g. Shanghai Maglev 300 km/h excluded; airport express lines ~160 km/h), and motorway limits
# plus margin for cars. Anything faster is not a real trip of that mode.
MAX_SPEED_KMH: dict[str, int] = {"walk": 15, "bike": 45, "bus": 100, "metro": 160, "ev": 180}

# A measured route can fall a little short of the straight line because of GPS noise at both
# ends; a distance shorter than the straight line by more than this is not plausible.
STRAIGHT_LINE_TOLERANCE_M = 50
STRAIGHT_LINE_TOLERANCE_SHARE = "0.02"

EARTH_RADIUS_M = 6_371_000

# No single trip of any mode lasts longer than a day. The bound also limits how far back the
# claims index must look for a stored trip that a new one could overlap.
LONGEST_TRIP_MS = 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class Measured:
    """The normalised values of a record that the rules read (None where absent or unreadable).

    Attributes:
        kind: `trip` or `event`, None for an unknown scene.
        scene: scene code as sent.
        start_ms, end_ms: epoch milliseconds, UTC.
        amount_milli: metres for trips; thousandths of the unit for events.
        origin_lat, origin_lon, dest_lat, dest_lon: decimal degrees.
    """

    kind: str | None
    scene: str | None
    start_ms: int | None
    end_ms: int | None
    amount_milli: int | None
    origin_lat: float | None = None
    origin_lon: float | None = None
    dest_lat: float | None = None
    dest_lon: float | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """A registered plausibility rule: its reason code, what it checks, the statement of when
    a record violates it (`violated`, plain Python) and its rendering as a predicate in the
    portable SQL of the batch engines (`predicate`)."""

    code: Reason
    doc: str
    violated: Callable[[Measured], bool]
    predicate: Callable[[], str]


RULES: dict[Reason, Rule] = {}


def rule(
    code: Reason, sql: Callable[[], str]
) -> Callable[[Callable[[Measured], bool]], Callable[[Measured], bool]]:
    """Register the statement of a rule under a reason code, with its SQL rendering."""

    def register(fn: Callable[[Measured], bool]) -> Callable[[Measured], bool]:
        RULES[code] = Rule(code, (fn.__doc__ or "").strip(), fn, sql)
        return fn

    return register


def _duration_ms(r: Measured) -> int | None:
    """How long a trip lasted; None for an event or a trip without both times."""
    if r.kind != "trip" or r.start_ms is None or r.end_ms is None:
        return None
    return r.end_ms - r.start_ms


@rule(Reason.NON_POSITIVE_DURATION, sql=lambda: "kind = 'trip' and end_ms <= start_ms")
def non_positive_duration(r: Measured) -> bool:
    """A trip must last longer than zero seconds."""
    duration = _duration_ms(r)
    return duration is not None and duration <= 0


@rule(Reason.TRIP_TOO_LONG, sql=lambda: f"kind = 'trip' and end_ms - start_ms > {LONGEST_TRIP_MS}")
def trip_too_long(r: Measured) -> bool:
    """A trip must end within LONGEST_TRIP_MS (24 hours) of its start."""
    duration = _duration_ms(r)
    return duration is not None and duration > LONGEST_TRIP_MS


def _speed_sql() -> str:
    bounds = " ".join(f"when '{scene}' then {kmh}" for scene, kmh in MAX_SPEED_KMH.items())
    # metres per millisecond × 3600 = km/h; compared without division.
    return (
        "kind = 'trip' and end_ms > start_ms and "
        f"amount_milli * 3600 > (case scene {bounds} end) * (end_ms - start_ms)"
    )


@rule(Reason.SPEED_IMPLAUSIBLE, sql=_speed_sql)
def speed_implausible(r: Measured) -> bool:
    """Average speed (distance over duration) above the mode's bound in MAX_SPEED_KMH."""
    duration = _duration_ms(r)
    if duration is None or duration <= 0 or r.amount_milli is None:
        return False
    bound = MAX_SPEED_KMH.get(r.scene or "")
    return bound is not None and r.amount_milli * 3600 > bound * duration


def _straight_line_sql() -> str:
    line = straight_line_m()
    return (
        "kind = 'trip' and origin_lat between -90 and 90 and dest_lat between -90 and 90 "
        "and origin_lon between -180 and 180 and dest_lon between -180 and 180 and "
        f"amount_milli < {line} * (1 - {STRAIGHT_LINE_TOLERANCE_SHARE}) "
        f"- {STRAIGHT_LINE_TOLERANCE_M}"
    )


def _on_earth(lat: float, lon: float) -> bool:
    return -90 <= lat <= 90 and -180 <= lon <= 180


@rule(Reason.DISTANCE_BELOW_STRAIGHT_LINE, sql=_straight_line_sql)
def distance_below_straight_line(r: Measured) -> bool:
    """Distance shorter than the great-circle line between the given origin and destination
    (coordinates out of range are ill-typed, not measured)."""
    lat1, lon1, lat2, lon2 = r.origin_lat, r.origin_lon, r.dest_lat, r.dest_lon
    if r.kind != "trip" or r.amount_milli is None:
        return False
    if lat1 is None or lon1 is None or lat2 is None or lon2 is None:
        return False
    if not (_on_earth(lat1, lon1) and _on_earth(lat2, lon2)):
        return False
    line = great_circle_m(lat1, lon1, lat2, lon2)
    share = 1 - float(STRAIGHT_LINE_TOLERANCE_SHARE)
    return r.amount_milli < line * share - STRAIGHT_LINE_TOLERANCE_M


def great_circle_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Haversine distance in metres between two points given in decimal degrees."""
    # Rounding can take the haversine a hair above 1 for antipodes: asin is defined up to 1.
    return (
        2
        * EARTH_RADIUS_M
        * math.asin(
            min(
                1.0,
                math.sqrt(
                    math.pow(math.sin(math.radians(lat2 - lat1) / 2), 2)
                    + math.cos(math.radians(lat1))
                    * math.cos(math.radians(lat2))
                    * math.pow(math.sin(math.radians(lon2 - lon1) / 2), 2)
                ),
            )
        )
    )


def straight_line_m() -> str:
    """Haversine distance in metres between origin and destination, as SQL."""
    return (
        f"(2 * {EARTH_RADIUS_M} * asin(least(1.0, sqrt("
        "power(sin(radians(dest_lat - origin_lat) / 2), 2) + "
        "cos(radians(origin_lat)) * cos(radians(dest_lat)) * "
        "power(sin(radians(dest_lon - origin_lon) / 2), 2)))))"
    )
