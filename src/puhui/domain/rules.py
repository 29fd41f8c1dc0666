"""Plausibility rules: registered functions that say when a record cannot be true.

Each rule is a plain function registered under its reason code. It returns a predicate over the
normalised columns of a batch (true where the record violates the rule), written in the portable
SQL both batch engines run (DuckDB on one machine, Spark SQL when scaled out). Every rule is
evaluated on every record, so a record reports all its violations, not only the first.

Columns a rule may use: `kind` ('trip' or 'event'), `scene`, `region`, `start_ms`, `end_ms`
(epoch milliseconds, UTC), `amount_milli` (metres for trips; thousandths of the unit for
events), `origin_lat`, `origin_lon`, `dest_lat`, `dest_lon` (decimal degrees, may be null).
Later rules (fraud signals, device anomalies) are added the same way.
"""

from __future__ import annotations

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
class Rule:
    """A registered plausibility rule: its reason code, what it checks and its predicate."""

    code: Reason
    doc: str
    predicate: Callable[[], str]


RULES: dict[Reason, Rule] = {}


def rule(code: Reason) -> Callable[[Callable[[], str]], Callable[[], str]]:
    """Register a function returning a violation predicate under a reason code."""

    def register(fn: Callable[[], str]) -> Callable[[], str]:
        RULES[code] = Rule(code, (fn.__doc__ or "").strip(), fn)
        return fn

    return register


@rule(Reason.NON_POSITIVE_DURATION)
def non_positive_duration() -> str:
    """A trip must last longer than zero seconds."""
    return "kind = 'trip' and end_ms <= start_ms"


@rule(Reason.TRIP_TOO_LONG)
def trip_too_long() -> str:
    """A trip must end within LONGEST_TRIP_MS (24 hours) of its start."""
    return f"kind = 'trip' and end_ms - start_ms > {LONGEST_TRIP_MS}"


@rule(Reason.SPEED_IMPLAUSIBLE)
def speed_implausible() -> str:
    """Average speed (distance over duration) above the mode's bound in MAX_SPEED_KMH."""
    bounds = " ".join(f"when '{scene}' then {kmh}" for scene, kmh in MAX_SPEED_KMH.items())
    # metres per millisecond × 3600 = km/h; compared without division.
    return (
        "kind = 'trip' and end_ms > start_ms and "
        f"amount_milli * 3600 > (case scene {bounds} end) * (end_ms - start_ms)"
    )


@rule(Reason.DISTANCE_BELOW_STRAIGHT_LINE)
def distance_below_straight_line() -> str:
    """Distance shorter than the great-circle line between the given origin and destination."""
    line = straight_line_m()
    return (
        "kind = 'trip' and origin_lat is not null and origin_lon is not null "
        "and dest_lat is not null and dest_lon is not null and "
        f"amount_milli < {line} * (1 - {STRAIGHT_LINE_TOLERANCE_SHARE}) "
        f"- {STRAIGHT_LINE_TOLERANCE_M}"
    )


def straight_line_m() -> str:
    """Haversine distance in metres between origin and destination, as SQL."""
    return (
        f"(2 * {EARTH_RADIUS_M} * asin(sqrt("
        "power(sin(radians(dest_lat - origin_lat) / 2), 2) + "
        "cos(radians(origin_lat)) * cos(radians(dest_lat)) * "
        "power(sin(radians(dest_lon - origin_lon) / 2), 2))))"
    )
