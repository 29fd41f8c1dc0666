"""Realistic activity-record files from several member platforms, with their ground truth.

This module owns the synthetic data used by the end-to-end tests and the benchmarks: citizens
living in several cities, their October 2026 behaviours, the files each member platform writes
about them, and the receipt every written row must get (`Truth`).

What is simulated:

- Citizens, a few per ten records, identified by a mainland mobile number or an 18-character
  resident ID number (GB 11643 check digit, some ending in X), living in Beijing 110000,
  Tianjin 120000, Shanghai 310000, Hangzhou 330100, Wuhan 420100, Shenzhen 440300 or
  Chengdu 510100, sometimes travelling to another of these cities.
- Their trips (walk, bike, bus, metro, ev), never overlapping each other, including multi-leg
  journeys whose legs touch (walk → metro → walk, walk → bus), and their events (recycling by
  material, paperless, no_cutlery, electricity saved).
- Member platforms, each writing its own file(s) (see `PLATFORMS`):
  `amap` (map app: walk, bike, bus and metro legs, no `ref`, with coordinates),
  `bjtransit` (Beijing transit operator: bus and metro rides, card-tap `ref`),
  `szmetro` (Shenzhen metro: metro rides, card-tap `ref`, millisecond timestamps),
  `jingtong` (Beijing city app: re-reports some `bjtransit` rides and recycling receipts with the
  same `ref` in another case with surrounding spaces; its own government e-services),
  `citic` (bank: e-statements with a `ref`), `aihuishou` (recycler: receipts with a `ref`),
  `meituan` (take-away orders without cutlery), `sgcc` (grid company: monthly kWh saved),
  `byd` (car maker: EV trips).
- The same ride seen by the map app and by the transit operator with clock skew (0–90 s on
  start and end) and no shared `ref`; the same citizen's phone written differently by each
  platform (`+86 138 0013 8000`, `13800138000`, `138-0013-8000`, `86 13800138000`), IDs in
  upper or lower case or with spaces; timestamps in UTC (`Z`) or `+08:00`.
- Replays (the same row sent again, in the same file or in a later re-send file) and changed
  re-sends (conflicts); about 2.5 % planted invalid rows, one defect each (see `DEFECTS`); a few
  citizens who exceed a methodology cap on purpose.

The truth is computed independently of the product's code: the rows are read back the way the
activity-record v1 contract describes, checked against its rules, quantified with the per-unit
reductions of the shipped methodology files (`Catalogue.quantify`), deduplicated and capped in
receive order. Receive order is the order of `Truth.files`: the files must be ingested in that
order, each by its platform (`puhui ingest --platform P FILE`), for the receipts to match.

Library: `generate(out_dir, records=5000, seed=1, fmt="mixed") -> Truth`.
Command: `python -m bench.generate --records N --out DIR --seed S --format jsonl|csv|parquet|mixed`
writes the files, `truth.parquet` (one row per written row) and `truth.json` (file order and
totals) into DIR.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from puhui.adapters.methodology_files import load_catalogue
from puhui.domain.errors import FactorNotFoundError
from puhui.domain.methodology import Catalogue
from puhui.domain.rules import (
    EARTH_RADIUS_M,
    MAX_SPEED_KMH,
    STRAIGHT_LINE_TOLERANCE_M,
    STRAIGHT_LINE_TOLERANCE_SHARE,
)

FIELDS: tuple[str, ...] = (
    "platform", "record_id", "subject", "scene", "region", "start", "end", "distance_km",
    "quantity", "material", "ref", "origin_lat", "origin_lon", "dest_lat", "dest_lon", "device",
)  # fmt: skip
(PLATFORM, RECORD_ID, SUBJECT, SCENE, REGION, START, END, DISTANCE, QUANTITY, MATERIAL, REF,
 O_LAT, O_LON, D_LAT, D_LON, DEVICE) = range(len(FIELDS))  # fmt: skip
NUMERIC = frozenset((DISTANCE, QUANTITY, O_LAT, O_LON, D_LAT, D_LON))

TRIP_SCENES = ("walk", "bike", "bus", "metro", "ev")
EVENT_SCENES = ("recycling", "paperless", "no_cutlery", "electricity")
MATERIALS = ("paper", "plastic", "metal", "glass", "textile")
FORMATS = ("jsonl", "csv", "parquet", "mixed")

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
CHINA_MS = 8 * HOUR_MS
# 2026-10-01T00:00:00+08:00: the first instant of the simulated month, Asia/Shanghai.
OCTOBER_MS = int(datetime(2026, 9, 30, 16, tzinfo=UTC).timestamp()) * 1000
DAYS = 31
# Starts are accepted up to this long after the moment of receipt (platforms' clocks drift).
FUTURE_TOLERANCE_MS = 5 * MINUTE_MS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


@dataclass(frozen=True, slots=True)
class City:
    """A city where citizens live and behave.

    Attributes:
        code: GB/T 2260 code the platforms write for it.
        name: English name.
        lat, lon: centre, decimal degrees.
        weight: share of citizens living there.
        operator: the transit operator reporting rides there, if any.
        operator_scenes: the scenes that operator reports.
        counties: county codes used as the first six digits of residents' ID numbers.
        province: the province-level code (written by the grid company).
    """

    code: str
    name: str
    lat: float
    lon: float
    weight: float
    operator: str | None
    operator_scenes: tuple[str, ...]
    counties: tuple[str, ...]
    province: str


CITIES: tuple[City, ...] = (
    City("110000", "Beijing", 39.9042, 116.4074, 0.24, "bjtransit", ("bus", "metro"),
         ("110105", "110108", "110102", "110106"), "110000"),
    City("440300", "Shenzhen", 22.5431, 114.0579, 0.19, "szmetro", ("metro",),
         ("440305", "440304", "440306"), "440000"),
    City("510100", "Chengdu", 30.5728, 104.0668, 0.14, None, (), ("510104", "510107"), "510000"),
    City("310000", "Shanghai", 31.2304, 121.4737, 0.16, None, (), ("310115", "310104"), "310000"),
    City("420100", "Wuhan", 30.5928, 114.3055, 0.10, None, (), ("420106", "420102"), "420000"),
    City("330100", "Hangzhou", 30.2741, 120.1551, 0.10, None, (), ("330106", "330108"), "330000"),
    City("120000", "Tianjin", 39.3434, 117.3616, 0.07, None, (), ("120101", "120104"), "120000"),
)  # fmt: skip
BY_CODE = {c.code: c for c in CITIES}


@dataclass(frozen=True, slots=True)
class Platform:
    """How one member platform writes its records.

    Attributes:
        code: platform code.
        role: what it is.
        fmt: its file format when the generator writes every platform in its own format.
        phone: how it writes a mobile number (`spaced`, `plain`, `hyphen`, `country`).
        ids: how it writes a resident ID number (`upper`, `lower`, `spaced`).
        utc: timestamps in UTC (`Z`) rather than `+08:00`.
        millis: timestamps with milliseconds.
        numbers: numbers as JSON numbers rather than strings (JSON Lines only).
        prefix: record id prefix.
    """

    code: str
    role: str
    fmt: str
    phone: str
    ids: str
    utc: bool
    millis: bool
    numbers: bool
    prefix: str


PLATFORMS: dict[str, Platform] = {
    p.code: p
    for p in (
        Platform("bjtransit", "Beijing transit operator", "csv", "plain", "upper", True, False,
                 False, "BJT"),
        Platform("amap", "map app", "jsonl", "spaced", "upper", False, False, True, "AMAP"),
        Platform("szmetro", "Shenzhen metro operator", "parquet", "country", "lower", False,
                 True, False, "SZM-"),
        Platform("jingtong", "Beijing city app", "jsonl", "hyphen", "spaced", True, False,
                 False, "jt_"),
        Platform("citic", "bank", "csv", "plain", "upper", False, False, False, "CITIC"),
        Platform("aihuishou", "recycler", "parquet", "hyphen", "upper", False, False, False,
                 "AHS"),
        Platform("meituan", "take-away platform", "jsonl", "spaced", "lower", True, False,
                 False, "MT"),
        Platform("sgcc", "grid company", "csv", "country", "upper", False, False, False,
                 "SGCC-"),
        Platform("byd", "car maker", "jsonl", "plain", "upper", True, False, True, "BYD"),
    )
}  # fmt: skip

# Files in the order they must be ingested (each platform's main file, then two re-sends).
# Beijing rides reach the clearing first from the operator, Shenzhen rides first from the map app.
FILE_ORDER: tuple[tuple[str, str], ...] = (
    ("bjtransit", "main"),
    ("amap", "main"),
    ("szmetro", "main"),
    ("jingtong", "main"),
    ("citic", "main"),
    ("aihuishou", "main"),
    ("meituan", "main"),
    ("sgcc", "main"),
    ("byd", "main"),
    ("amap", "resend"),
    ("bjtransit", "resend"),
)
RESENDING = frozenset(p for p, part in FILE_ORDER if part == "resend")

# Planted defects: name → (the reason it must produce, which records it applies to).
DEFECTS: dict[str, tuple[str, str]] = {
    "missing_region": ("missing_field", "any"),
    "missing_subject": ("missing_field", "any"),
    "missing_record_id": ("missing_field", "any"),
    "unknown_scene": ("unknown_scene", "any"),
    "region_not_real": ("unknown_region", "any"),
    "region_district": ("unknown_region", "any"),
    "subject_short": ("malformed_subject", "any"),
    "subject_check_digit": ("malformed_subject", "any"),
    "end_before_start": ("end_before_start", "trip"),
    "start_in_future": ("start_in_future", "any"),
    "negative_amount": ("negative_amount", "any"),
    "missing_distance": ("missing_distance", "trip"),
    "missing_quantity": ("missing_quantity", "event"),
    "missing_end": ("missing_end", "trip"),
    "speed": ("speed_implausible", "trip"),
    "below_straight_line": ("distance_below_straight_line", "located"),
    "timestamp_without_offset": ("ill_typed_field", "any"),
    "missing_material": ("missing_material", "recycling"),
    "unknown_material": ("unknown_material", "recycling"),
    "platform_mismatch": ("platform_mismatch", "any"),
    "malformed_row": ("malformed_row", "text"),
}
# What each platform reports, for choosing where a defect can be planted.
TRIP_PLATFORMS = frozenset(("amap", "bjtransit", "szmetro", "byd"))
LOCATED_PLATFORMS = frozenset(("amap", "byd"))

INVALID_SHARE = 0.025
REPLAY_SHARE = 0.012
CONFLICT_SHARE = 0.003
HEAVY_SHARE = 1 / 60

_PHONE_PREFIXES = (
    "130", "131", "132", "133", "135", "136", "137", "138", "139", "150", "151", "152", "155",
    "157", "158", "159", "166", "176", "177", "180", "181", "186", "187", "188", "189", "199",
)  # fmt: skip
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check(first17: str) -> str:
    """GB 11643 check character of the first 17 digits of a resident ID number."""
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


# Writing ------------------------------------------------------------------------------------


def spell(digits: str, style: str) -> str:
    """Write a citizen's identifier (11-digit mobile or 18-character ID) in a platform's style."""
    if len(digits) == 11:
        if style == "spaced":
            return f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}"
        if style == "hyphen":
            return f"{digits[:3]}-{digits[3:7]}-{digits[7:]}"
        if style == "country":
            return f"86 {digits}"
        return digits
    if style == "lower":
        return digits.lower()
    if style == "spaced":
        return f"{digits[:6]} {digits[6:14]} {digits[14:]}"
    return digits


def unused_spelling(digits: str) -> str:
    """A spelling of an identifier that no platform of `PLATFORMS` writes."""
    if len(digits) == 11:
        return f"+86-{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    return f"{digits[:6]}-{digits[6:14]}-{digits[14:]}".lower()


_DAY_TEXT: dict[int, str] = {}


def stamp(ms: int, utc: bool, millis: bool = False) -> str:
    """RFC 3339 text of an instant, in UTC (`Z`) or Asia/Shanghai (`+08:00`)."""
    local = ms if utc else ms + CHINA_MS
    day, rest = divmod(local, DAY_MS)
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
    seconds, fraction = divmod(rest, 1000)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    frac = f".{fraction:03d}" if millis else ""
    return f"{text}T{hours:02d}:{minutes:02d}:{seconds:02d}{frac}{'Z' if utc else '+08:00'}"


def km(value: float, places: int = 3) -> str:
    """A distance or quantity as decimal text."""
    return f"{value:.{places}f}"


def _move(lat: float, lon: float, distance_km: float, bearing: float) -> tuple[float, float]:
    """The point `distance_km` away from (lat, lon) along a bearing (radians), approximately."""
    dlat = distance_km * math.cos(bearing) / 111.32
    dlon = distance_km * math.sin(bearing) / (111.32 * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1))
        * math.cos(math.radians(lat2))
        * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


class Row:
    """One written row: the 16 field values (text or None) and what it was planted as.

    `raw` holds the literal text of a row that is not a record (a broken JSON line, a CSV row
    of the wrong width); `key` orders the rows of a file.
    """

    __slots__ = ("key", "raw", "scenario", "values")

    def __init__(self, values: list[str | None], scenario: str, key: float = 0.0) -> None:
        self.values = values
        self.scenario = scenario
        self.key = key
        self.raw: str | list[str] | None = None


@dataclass(slots=True)
class Citizen:
    """A simulated citizen."""

    index: int
    digits: str
    city: City
    uses_map: bool
    has_card: bool
    device: str
    cursor: dict[int, int] = field(default_factory=dict)

    @property
    def canonical(self) -> str:
        """The identifier's canonical form (`m:…` or `id:…`)."""
        return ("m:" if len(self.digits) == 11 else "id:") + self.digits


# Behaviours -------------------------------------------------------------------------------


class _Builder:
    """Simulates citizens and what each platform reports about them."""

    def __init__(self, seed: int, platforms: Iterable[str]) -> None:
        self.rng = random.Random(seed)
        self.enabled = frozenset(platforms)
        self.main: dict[str, list[Row]] = {p: [] for p in PLATFORMS}
        self.resend: dict[str, list[Row]] = {p: [] for p in PLATFORMS}
        self.counters: Counter[str] = Counter()
        self.citizens: list[Citizen] = []
        self.used: set[str] = set()
        self.count = 0
        self.heavy: Counter[str] = Counter()

    # identities --------------------------------------------------------------------------

    def _citizen(self) -> Citizen:
        rng = self.rng
        city = rng.choices(CITIES, weights=[c.weight for c in CITIES])[0]
        while True:
            if rng.random() < 0.75:
                digits = rng.choice(_PHONE_PREFIXES) + f"{rng.randrange(10**8):08d}"
            else:
                born = date(1950, 1, 1) + timedelta(days=rng.randrange(20_000))
                first17 = rng.choice(city.counties) + born.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
                digits = first17 + id_check(first17)
            if digits not in self.used:
                break
        self.used.add(digits)
        citizen = Citizen(
            index=len(self.citizens),
            digits=digits,
            city=city,
            uses_map=rng.random() < 0.7,
            has_card=rng.random() < 0.85,
            device=f"{rng.getrandbits(64):016x}",
        )
        self.citizens.append(citizen)
        return citizen

    def _id(self, platform: str) -> str:
        self.counters[platform] += 1
        return f"{PLATFORMS[platform].prefix}{self.counters[platform]:010d}"

    def _ref(self, kind: str) -> str:
        self.counters["ref:" + kind] += 1
        n = self.counters["ref:" + kind]
        if kind == "tap":
            return f"TAP-{(n * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFF:012X}"
        if kind == "sztap":
            return f"SZT{n:011d}"
        if kind == "receipt":
            return f"RC2026{n:09d}"
        if kind == "statement":
            return f"ESTMT-{n:010d}"
        if kind == "order":
            return f"2610{n:014d}"
        return f"JTGOV{n:09d}"

    # emitting ----------------------------------------------------------------------------

    def _emit(self, platform: str, values: list[str | None], scenario: str) -> Row | None:
        if platform not in self.enabled:
            return None
        row = Row(values, scenario, float(len(self.main[platform])))
        self.main[platform].append(row)
        self.count += 1
        return row

    def _trip(
        self,
        platform: str,
        citizen: Citizen,
        scene: str,
        region: str,
        start_ms: int,
        end_ms: int,
        distance: str,
        scenario: str,
        ref: str | None = None,
        coords: tuple[float, float, float, float] | None = None,
    ) -> Row | None:
        p = PLATFORMS[platform]
        values: list[str | None] = [
            platform, self._id(platform), spell(citizen.digits, p.ids if len(citizen.digits) == 18 else p.phone),
            scene, region, stamp(start_ms, p.utc, p.millis), stamp(end_ms, p.utc, p.millis),
            distance, None, None, ref, None, None, None, None, None,
        ]  # fmt: skip
        if coords is not None:
            values[O_LAT:D_LON + 1] = [f"{c:.6f}" for c in coords]
            values[DEVICE] = citizen.device
        return self._emit(platform, values, scenario)

    def _event(
        self,
        platform: str,
        citizen: Citizen,
        scene: str,
        region: str,
        at_ms: int,
        quantity: str,
        scenario: str,
        ref: str | None = None,
        material: str | None = None,
    ) -> Row | None:
        p = PLATFORMS[platform]
        values: list[str | None] = [
            platform, self._id(platform), spell(citizen.digits, p.ids if len(citizen.digits) == 18 else p.phone),
            scene, region, stamp(at_ms, p.utc, p.millis), None, None, quantity, material, ref,
            None, None, None, None, None,
        ]  # fmt: skip
        return self._emit(platform, values, scenario)

    def _slot(self, citizen: Citizen, duration_ms: int, day: int | None = None, gap: tuple[int, int] = (15, 150)) -> int:
        """Reserve a free time for a trip of the citizen (trips never overlap) and return its
        start; trips of a day follow each other with a gap."""
        rng = self.rng
        for _ in range(50):
            d = rng.randrange(DAYS) if day is None else day
            start = citizen.cursor.get(d)
            if start is None:
                start = OCTOBER_MS + d * DAY_MS + rng.randrange(390, 540) * MINUTE_MS + rng.randrange(60) * 1000
            if start + duration_ms <= OCTOBER_MS + (d + 1) * DAY_MS - 30 * MINUTE_MS or day is not None:
                citizen.cursor[d] = start + duration_ms + rng.randrange(*gap) * MINUTE_MS
                return start
        raise RuntimeError("no free time left for a trip")  # pragma: no cover

    def _moment(self, day: int | None = None) -> int:
        d = self.rng.randrange(DAYS) if day is None else day
        return OCTOBER_MS + d * DAY_MS + self.rng.randrange(8 * 3600, 22 * 3600) * 1000

    def _place(self, city: City) -> tuple[float, float]:
        rng = self.rng
        return _move(city.lat, city.lon, rng.uniform(0, 12), rng.uniform(0, 2 * math.pi))

    def _leg_coords(self, origin: tuple[float, float], measured_km: float) -> tuple[float, float, float, float]:
        """Origin and destination of a leg whose measured length is `measured_km`: the straight
        line is shorter by a detour factor."""
        lat, lon = origin
        dest = _move(lat, lon, measured_km / self.rng.uniform(1.15, 1.5), self.rng.uniform(0, 2 * math.pi))
        return lat, lon, dest[0], dest[1]

    def _trip_city(self, citizen: Citizen) -> City:
        if self.rng.random() < 0.05:
            return self.rng.choice(CITIES)
        return citizen.city

    def _walk_leg(self) -> tuple[float, int]:
        distance = self.rng.uniform(0.5, 1.2)
        return distance, int(distance / self.rng.uniform(4.0, 5.0) * HOUR_MS) // 1000 * 1000

    def transit_journey(self, citizen: Citizen, scene: str, day: int | None = None, gap: tuple[int, int] = (15, 150), legs: bool = True, scenario: str = "journey") -> None:
        """A bus or metro ride, usually with walking legs that touch it, seen by the map app
        (every leg, no ref), the city's transit operator (the ride, card-tap ref, clock skew)
        and, in Beijing, sometimes again by the city app (same ref, another spelling)."""
        rng = self.rng
        city = self._trip_city(citizen)
        walk_before = legs and (scene == "metro" or rng.random() < 0.5)
        walk_after = legs and scene == "metro"
        w1, w1_ms = self._walk_leg() if walk_before else (0.0, 0)
        w2, w2_ms = self._walk_leg() if walk_after else (0.0, 0)
        if scene == "metro":
            true_km = rng.uniform(3, 20)
            ride_ms = int(true_km / rng.uniform(28, 38) * HOUR_MS) + rng.randrange(60, 240) * 1000
        else:
            true_km = rng.uniform(1.5, 12)
            ride_ms = int(true_km / rng.uniform(12, 22) * HOUR_MS) + rng.randrange(30, 180) * 1000
        ride_ms = ride_ms // 1000 * 1000
        t0 = self._slot(citizen, w1_ms + ride_ms + w2_ms, day, gap)
        t1 = t0 + w1_ms
        t2 = t1 + ride_ms
        t3 = t2 + w2_ms
        operator = city.operator if scene in city.operator_scenes and citizen.has_card else None
        on_map = citizen.uses_map
        tag = f"{scenario}:{scene}"
        if on_map:
            here = self._place(city)
            if walk_before:
                c = self._leg_coords(here, w1)
                self._trip("amap", citizen, "walk", city.code, t0, t1, km(w1), tag + ":walk", coords=c)
                here = (c[2], c[3])
            mapped = true_km * rng.uniform(0.97, 1.05)
            c = self._leg_coords(here, mapped)
            label = scene if rng.random() > 0.03 else ("bus" if scene == "metro" else "metro")
            self._trip("amap", citizen, label, city.code, t1, t2, km(mapped, 4 if rng.random() < 0.1 else 3), tag + ":ride", coords=c)
            if walk_after:
                c2 = self._leg_coords((c[2], c[3]), w2)
                self._trip("amap", citizen, "walk", city.code, t2, t3, km(w2), tag + ":walk", coords=c2)
        if operator is not None:
            ref = self._ref("tap" if operator == "bjtransit" else "sztap")
            skew = (rng.randint(-90, 90), rng.randint(-90, 90)) if on_map else (0, 0)
            millis = rng.randrange(1000) if operator == "szmetro" else 0
            s, e = t1 + skew[0] * 1000 + millis, t2 + skew[1] * 1000 + millis
            fare_km = km(round(true_km, 1), 1)
            self._trip(operator, citizen, scene, city.code, s, e, fare_km, tag + ":tap", ref=ref)
            if operator == "bjtransit" and rng.random() < 0.3:
                again = rng.choice(("  ", " ", "")) + ref.lower() + rng.choice((" ", "  "))
                js, je = s + rng.randint(-30, 30) * 1000, e + rng.randint(-30, 30) * 1000
                self._trip("jingtong", citizen, scene, "110100", js, je, fare_km, tag + ":city-app", ref=again)

    def simple_trip(self, citizen: Citizen, scene: str, day: int | None = None, distance: float | None = None, scenario: str = "trip") -> None:
        """A walk or bike ride seen by the map app, or an EV trip seen by the car maker."""
        rng = self.rng
        city = self._trip_city(citizen)
        speed = {"walk": (4.0, 5.5), "bike": (10, 18), "ev": (25, 55)}[scene]
        span = {"walk": (1.0, 4.0), "bike": (2.0, 10.0), "ev": (5.0, 45.0)}[scene]
        d = rng.uniform(*span) if distance is None else distance
        duration = int(d / rng.uniform(*speed) * HOUR_MS) // 1000 * 1000
        start = self._slot(citizen, duration, day, (10, 150) if day is None else (5, 30))
        platform = "byd" if scene == "ev" else "amap"
        if platform == "amap" and not citizen.uses_map:
            return
        c = self._leg_coords(self._place(city), d)
        places = 2 if scene == "ev" else (4 if rng.random() < 0.1 else 3)
        self._trip(platform, citizen, scene, city.code, start, start + duration, km(d, places), f"{scenario}:{scene}", coords=c)

    def recycling(self, citizen: Citizen, material: str | None = None, kg: float | None = None, scenario: str = "event") -> None:
        """Recyclables handed in; a Beijing receipt is sometimes reported again by the city app."""
        rng = self.rng
        material = material or rng.choices(MATERIALS, weights=(45, 25, 10, 10, 10))[0]
        if kg is None:
            kg = rng.uniform(0.3, 4.0 if material == "textile" else 8.0)
        at = self._moment()
        ref = self._ref("receipt")
        city = citizen.city
        quantity = km(kg, 2)
        self._event("aihuishou", citizen, "recycling", city.code, at, quantity, f"{scenario}:recycling", ref=ref, material=material)
        if city.code == "110000" and rng.random() < 0.25:
            self._event("jingtong", citizen, "recycling", "110100", at + rng.randrange(0, 600) * 1000, quantity, f"{scenario}:recycling:city-app", ref=f" {ref.lower()} ", material=material)

    def paperless(self, citizen: Citizen, day: int | None = None, scenario: str = "event") -> None:
        """An e-statement from the bank."""
        self._event("citic", citizen, "paperless", citizen.city.code, self._moment(day), "1", f"{scenario}:paperless", ref=self._ref("statement"))

    def gov_service(self, citizen: Citizen) -> None:
        """An online government service in the Beijing city app."""
        if citizen.city.code == "110000":
            self._event("jingtong", citizen, "paperless", "110100", self._moment(), "1", "event:paperless:city-app", ref=self._ref("gov"))

    def no_cutlery(self, citizen: Citizen, day: int | None = None, scenario: str = "event") -> None:
        """A take-away order without disposable cutlery."""
        self._event("meituan", citizen, "no_cutlery", citizen.city.code, self._moment(day), "1", f"{scenario}:no_cutlery", ref=self._ref("order"))

    def electricity(self, citizen: Citizen, kwh: float | None = None, scenario: str = "event") -> None:
        """kWh saved in October against October last year, reported at the end of the month."""
        if citizen.city.province == "440000":
            return
        kwh = self.rng.uniform(3, 60) if kwh is None else kwh
        at = OCTOBER_MS + 30 * DAY_MS + self.rng.randrange(20 * 3600, 23 * 3600) * 1000
        self._event("sgcc", citizen, "electricity", citizen.city.province, at, km(kwh, 1), f"{scenario}:electricity")

    def heavy_day(self, citizen: Citizen) -> None:
        """A citizen who exceeds a methodology cap on one day (or month) on purpose."""
        rng = self.rng
        pattern = rng.choice(("bus", "metro", "walk", "bike", "paperless", "no_cutlery", "recycling", "electricity", "ev"))
        if pattern == "electricity" and citizen.city.province == "440000":
            pattern = "recycling"
        self.heavy[pattern] += 1
        day = rng.randrange(DAYS)
        if pattern in ("bus", "metro"):
            if citizen.city.operator is None or pattern not in citizen.city.operator_scenes:
                citizen.uses_map = True
            for _ in range(12 if pattern == "bus" else 7):
                self.transit_journey(citizen, pattern, day=day, gap=(3, 15), legs=False, scenario="over-cap")
        elif pattern in ("walk", "bike"):
            citizen.uses_map = True
            for _ in range(3 if pattern == "walk" else 2):
                self.simple_trip(citizen, pattern, day=day, distance=rng.uniform(2.8, 3.5) if pattern == "walk" else rng.uniform(12, 15), scenario="over-cap")
        elif pattern == "ev":
            for _ in range(3):
                self.simple_trip(citizen, "ev", day=day, distance=rng.uniform(110, 130), scenario="over-cap")
        elif pattern == "paperless":
            for _ in range(7):
                self.paperless(citizen, day=day, scenario="over-cap")
        elif pattern == "no_cutlery":
            for _ in range(4):
                self.no_cutlery(citizen, day=day, scenario="over-cap")
        elif pattern == "recycling":
            self.recycling(citizen, "textile", rng.uniform(6.5, 8.0), scenario="over-cap")
        else:
            self.electricity(citizen, rng.uniform(100, 140), scenario="over-cap")

    def citizen_month(self) -> None:
        """One citizen and their behaviours in October."""
        rng = self.rng
        citizen = self._citizen()
        if rng.random() < HEAVY_SHARE:
            self.heavy_day(citizen)
        n = 1
        while rng.random() < 0.55:
            n += 1
        electricity_done = False
        for _ in range(n):
            what = rng.choices(
                ("metro", "bus", "walk", "bike", "ev", "recycling", "paperless", "no_cutlery", "electricity", "gov"),
                weights=(20, 14, 12, 10, 5, 8, 12, 14, 3, 2),
            )[0]
            if what in ("metro", "bus"):
                self.transit_journey(citizen, what)
            elif what in ("walk", "bike", "ev"):
                self.simple_trip(citizen, what)
            elif what == "recycling":
                self.recycling(citizen)
            elif what == "paperless":
                self.paperless(citizen)
            elif what == "no_cutlery":
                self.no_cutlery(citizen)
            elif what == "electricity" and not electricity_done:
                electricity_done = True
                self.electricity(citizen)
            elif what == "gov":
                self.gov_service(citizen)

    # defects, replays, conflicts ---------------------------------------------------------

    def _base(self, platform: str) -> Row:
        """A valid record of the platform for a random citizen, to be spoiled (not emitted)."""
        rng = self.rng
        citizen = rng.choice(self.citizens)
        city = citizen.city
        p = PLATFORMS[platform]
        subject = spell(citizen.digits, p.ids if len(citizen.digits) == 18 else p.phone)
        start = self._moment()
        values: list[str | None] = [platform, self._id(platform), subject, None, city.code,
                                    stamp(start, p.utc, p.millis)] + [None] * 10
        if platform in TRIP_PLATFORMS:
            scene = {"amap": rng.choice(("walk", "bike")), "byd": "ev", "szmetro": "metro"}.get(platform, rng.choice(("bus", "metro")))
            distance = rng.uniform(1.0, 4.0) if scene == "walk" else rng.uniform(3.0, 15.0)
            speed = {"walk": 4.5, "bike": 14, "ev": 40, "bus": 18, "metro": 32}[scene]
            values[SCENE] = scene
            values[END] = stamp(start + int(distance / speed * HOUR_MS) // 1000 * 1000, p.utc, p.millis)
            values[DISTANCE] = km(distance, 1 if platform in ("bjtransit", "szmetro") else 3)
            if platform == "szmetro":
                values[REGION] = "440300"
            elif platform == "bjtransit":
                values[REGION] = "110000"
                values[REF] = self._ref("tap")
            if platform in LOCATED_PLATFORMS:
                values[O_LAT:D_LON + 1] = [f"{c:.6f}" for c in self._leg_coords(self._place(city), distance)]
        else:
            scene = {"citic": "paperless", "aihuishou": "recycling", "meituan": "no_cutlery", "sgcc": "electricity", "jingtong": "paperless"}[platform]
            values[SCENE] = scene
            values[QUANTITY] = {"recycling": km(rng.uniform(0.5, 5), 2), "electricity": km(rng.uniform(3, 40), 1)}.get(scene, "1")
            if scene == "recycling":
                values[MATERIAL] = rng.choice(MATERIALS)
            if platform == "sgcc":
                values[REGION] = city.province
            if platform == "jingtong":
                values[REGION] = "110100"
        return Row(values, "")

    def _spoil(self, row: Row, defect: str, fmt: str) -> None:
        rng = self.rng
        v = row.values
        row.scenario = "invalid:" + defect
        if defect == "missing_region":
            v[REGION] = None
        elif defect == "missing_subject":
            v[SUBJECT] = None
        elif defect == "missing_record_id":
            v[RECORD_ID] = None
        elif defect == "unknown_scene":
            v[SCENE] = rng.choice(("scooter", "carpool", "taxi", "donation"))
        elif defect == "region_not_real":
            v[REGION] = rng.choice(("999999", "000000", "990100"))
        elif defect == "region_district":
            v[REGION] = rng.choice(("110101", "110105", "440305", "510104", "310115"))
        elif defect == "subject_short":
            v[SUBJECT] = rng.choice(("1380013800", "2380013800", "+86 138 0013 800", "user-8812"))
        elif defect == "subject_check_digit":
            first17 = rng.choice(CITIES).counties[0] + "19880808" + f"{rng.randrange(1000):03d}"
            good = id_check(first17)
            v[SUBJECT] = first17 + next(c for c in "0123456789X" if c != good)
        elif defect == "end_before_start":
            v[START], v[END] = v[END], v[START]
        elif defect == "start_in_future":
            v[START] = "2030" + (v[START] or "")[4:]
            if v[END] is not None:
                v[END] = "2030" + v[END][4:]
        elif defect == "negative_amount":
            if v[DISTANCE] is not None:
                v[DISTANCE] = "-" + v[DISTANCE]
                v[O_LAT:D_LON + 1] = [None] * 4
            else:
                v[QUANTITY] = "-" + (v[QUANTITY] or "1")
        elif defect == "missing_distance":
            v[DISTANCE] = None
        elif defect == "missing_quantity":
            v[QUANTITY] = None
        elif defect == "missing_end":
            v[END] = None
        elif defect == "speed":
            start = _parse_ms(v[START])
            end = _parse_ms(v[END])
            assert start is not None and end is not None
            hours = (end - start) / HOUR_MS
            v[DISTANCE] = km(MAX_SPEED_KMH[v[SCENE] or "walk"] * hours * rng.uniform(1.4, 2.5) + 1, 1)
            v[O_LAT:D_LON + 1] = [None] * 4
        elif defect == "below_straight_line":
            coords = [float(c) for c in v[O_LAT:D_LON + 1] if c is not None]
            line_km = haversine_m(*coords) / 1000
            v[DISTANCE] = km(line_km * rng.uniform(0.3, 0.6), 3)
        elif defect == "timestamp_without_offset":
            text = v[START] or ""
            v[START] = text[:19]
        elif defect == "missing_material":
            v[MATERIAL] = None
        elif defect == "unknown_material":
            v[MATERIAL] = rng.choice(("wood", "ewaste", "Paper "))
        elif defect == "platform_mismatch":
            v[PLATFORM] = rng.choice([p for p in PLATFORMS if p != v[PLATFORM]])
        elif defect == "malformed_row":
            if _format_of(v[PLATFORM] or "", fmt) == "jsonl":
                line = _json_line(v, PLATFORMS[v[PLATFORM] or "amap"].numbers)
                row.raw = rng.choice((line[: len(line) // 2], line.replace('":', '" ', 1), "not json"))
            else:
                row.raw = [c or "" for c in v] + ["extra"]

    def plant_defects(self, n: int, fmt: str) -> None:
        """Spoil `n` fresh records, one defect each, cycling through every defect."""
        rng = self.rng
        names = list(DEFECTS)
        rng.shuffle(names)
        sizes = {p: len(rows) for p, rows in self.main.items() if p in self.enabled}
        for i in range(n):
            defect = names[i % len(names)]
            applies = DEFECTS[defect][1]
            eligible = [
                p for p, size in sizes.items()
                if size and (
                    applies == "any"
                    or (applies == "trip" and p in TRIP_PLATFORMS)
                    or (applies == "event" and p not in TRIP_PLATFORMS)
                    or (applies == "located" and p in LOCATED_PLATFORMS)
                    or (applies == "recycling" and p == "aihuishou")
                    or (applies == "text" and _format_of(p, fmt) != "parquet")
                )
            ]  # fmt: skip
            if not eligible:
                defect = "unknown_scene"
                eligible = [p for p, size in sizes.items() if size]
            if not eligible:
                return
            platform = rng.choices(eligible, weights=[sizes[p] for p in eligible])[0]
            row = self._base(platform)
            self._spoil(row, defect, fmt)
            row.key = rng.random() * sizes[platform]
            self.main[platform].append(row)
            self.count += 1

    def plant_replays(self, replays: int, conflicts: int) -> None:
        """Send some records again, identical (replays) or changed (conflicts), later in the same
        file or in the platform's re-send file."""
        rng = self.rng
        pool = [
            (p, row) for p, rows in self.main.items() for row in rows
            if p in self.enabled and not row.scenario.startswith("invalid")
        ]  # fmt: skip
        if not pool:
            return
        for i in range(replays + conflicts):
            platform, original = rng.choice(pool)
            values = list(original.values)
            if i < replays:
                scenario = "replay"
            else:
                scenario = "conflict"
                if values[DISTANCE] is not None:
                    values[DISTANCE] = km(float(values[DISTANCE]) * 1.2 + 0.3, 3)
                else:
                    values[QUANTITY] = km(float(values[QUANTITY] or 0) + 1, 0 if values[SCENE] in ("paperless", "no_cutlery") else 2)
            row = Row(values, scenario)
            if platform in RESENDING and rng.random() < 0.5:
                row.key = rng.random()
                self.resend[platform].append(row)
            else:
                size = len(self.main[platform])
                row.key = original.key + 0.5 + rng.random() * max(size - original.key, 1.0)
                self.main[platform].append(row)
            self.count += 1


def _format_of(platform: str, fmt: str) -> str:
    """The format a platform's files are written in."""
    return PLATFORMS[platform].fmt if fmt == "mixed" else fmt


def _json_line(values: Sequence[str | None], numbers: bool) -> str:
    parts = []
    for i, value in enumerate(values):
        if value is None:
            continue
        if numbers and i in NUMERIC:
            parts.append(f'"{FIELDS[i]}":{value}')
        else:
            parts.append(f'"{FIELDS[i]}":"{_json_escape(value)}"')
    return "{" + ",".join(parts) + "}"


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _json_escape(value: str) -> str:
    if _NEEDS_ESCAPE.search(value) is None:
        return value
    return json.dumps(value)[1:-1]


def _write(path: Path, fmt: str, platform: str, rows: list[Row]) -> list[tuple[list[str | None] | None, str | None]]:
    """Write a file and return, per written row, the field values as the contract reads them
    (None for a row that is not a record) and the record id a receipt will name."""
    numbers = PLATFORMS[platform].numbers
    read: list[tuple[list[str | None] | None, str | None]] = []
    if fmt == "jsonl":
        with path.open("w", encoding="utf-8", buffering=1 << 20) as f:
            lines = []
            for row in rows:
                if row.raw is not None:
                    lines.append(str(row.raw))
                    read.append((None, None))
                else:
                    lines.append(_json_line(row.values, numbers))
                    read.append((list(row.values), row.values[RECORD_ID]))
                if len(lines) >= 10_000:
                    f.write("\n".join(lines) + "\n")
                    lines.clear()
            if lines:
                f.write("\n".join(lines) + "\n")
    elif fmt == "csv":
        with path.open("w", encoding="utf-8", newline="", buffering=1 << 20) as f:
            f.write(",".join(FIELDS) + "\n")
            lines = []
            for row in rows:
                if row.raw is not None:
                    cells = list(row.raw)
                    lines.append(",".join(cells))
                    read.append((None, cells[RECORD_ID] or None))
                else:
                    lines.append(",".join(v or "" for v in row.values))
                    read.append((list(row.values), row.values[RECORD_ID]))
                if len(lines) >= 10_000:
                    f.write("\n".join(lines) + "\n")
                    lines.clear()
            if lines:
                f.write("\n".join(lines) + "\n")
    else:
        columns = list(zip(*(row.values for row in rows), strict=True)) if rows else [()] * len(FIELDS)
        table = pa.table({name: pa.array(columns[i], pa.string()) for i, name in enumerate(FIELDS)})
        pq.write_table(table, path)
        read = [(list(row.values), row.values[RECORD_ID]) for row in rows]
    return read


# Truth ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expected:
    """The receipt one written row must get.

    Attributes:
        platform: the platform whose file holds it.
        file: the file's name; `row` its position there (from 1, as receipts count).
        record_id: the record id the receipt names (None when the row has none or is not JSON).
        occurrence: how many rows with this (platform, record_id) were received before it.
        status: `credited`, `duplicate` or `rejected`.
        reasons: the reason codes of the receipt.
        reduction_g: grams credited.
        methodology: `id@version` for credited and duplicate records, else None.
        subject: canonical identifier of the citizen (None when malformed).
        scenario: what the generator planted (e.g. `journey:metro:tap`, `invalid:speed`).
        replay: the receipt repeats the stored receipt of an earlier identical row; its grams
            were credited once, by that row.
    """

    platform: str
    file: str
    row: int
    record_id: str | None
    occurrence: int
    status: str
    reasons: frozenset[str]
    reduction_g: int
    methodology: str | None
    subject: str | None
    scenario: str
    replay: bool = False

    @property
    def reason(self) -> str:
        """The reason codes joined with `;`, sorted."""
        return ";".join(sorted(self.reasons))


@dataclass
class Truth:
    """Ground truth of a generated data set.

    Attributes:
        files: (platform, path) in the order they must be ingested.
        expected: the receipt of every written row, in receive order.
        seed, records, fmt: how it was generated.
        spellings: canonical subject → a spelling of it that no file uses.
        heavy: cap-exceeding patterns planted, by scene.
    """

    files: list[tuple[str, Path]]
    expected: list[Expected]
    seed: int
    records: int
    fmt: str
    spellings: dict[str, str]
    heavy: dict[str, int]

    @property
    def platforms(self) -> list[str]:
        """Platforms that wrote at least one file, in first-file order."""
        return list(dict.fromkeys(p for p, _ in self.files))

    @property
    def total_g(self) -> int:
        """Grams credited, each record once (replays repeat a receipt, they credit nothing)."""
        return sum(e.reduction_g for e in self.expected if not e.replay)

    def receipt(self, platform: str, record_id: str, occurrence: int = 0) -> Expected:
        """The expected receipt of the n-th row received with this (platform, record_id)."""
        for e in self.expected:
            if e.platform == platform and e.record_id == record_id and e.occurrence == occurrence:
                return e
        raise KeyError((platform, record_id, occurrence))

    def by_position(self) -> dict[tuple[str, int], Expected]:
        """Expected receipts by (file name, row)."""
        return {(e.file, e.row): e for e in self.expected}

    def balances(self) -> dict[str, int]:
        """Grams credited per citizen (canonical identifier)."""
        out: Counter[str] = Counter()
        for e in self.expected:
            if e.reduction_g and e.subject and not e.replay:
                out[e.subject] += e.reduction_g
        return dict(out)

    def summary(self) -> dict[str, object]:
        """Counts by status, reason, platform and scenario, and the grams credited."""
        reasons: Counter[str] = Counter()
        for e in self.expected:
            reasons.update(e.reasons)
        return {
            "rows": len(self.expected),
            "citizens": len(self.spellings),
            "by_status": dict(Counter(e.status for e in self.expected).most_common()),
            "by_reason": dict(reasons.most_common()),
            "by_platform": dict(Counter(e.platform for e in self.expected).most_common()),
            "by_scenario": dict(
                Counter(e.scenario.split(":")[0] for e in self.expected).most_common()
            ),
            "over_cap_patterns": self.heavy,
            "credited_g": self.total_g,
        }

    def write(self, folder: Path) -> None:
        """Write `truth.parquet` (one row per written row) and `truth.json` (order, totals)."""
        e = self.expected
        table = pa.table(
            {
                "platform": pa.array([x.platform for x in e], pa.string()),
                "file": pa.array([x.file for x in e], pa.string()),
                "row": pa.array([x.row for x in e], pa.int64()),
                "record_id": pa.array([x.record_id for x in e], pa.string()),
                "occurrence": pa.array([x.occurrence for x in e], pa.int32()),
                "status": pa.array([x.status for x in e], pa.string()),
                "reason": pa.array([x.reason for x in e], pa.string()),
                "reduction_g": pa.array([x.reduction_g for x in e], pa.int64()),
                "methodology": pa.array([x.methodology for x in e], pa.string()),
                "subject": pa.array([x.subject for x in e], pa.string()),
                "scenario": pa.array([x.scenario for x in e], pa.string()),
                "replay": pa.array([x.replay for x in e], pa.bool_()),
            }
        )
        pq.write_table(table, folder / "truth.parquet")
        doc = {
            "seed": self.seed,
            "records": self.records,
            "format": self.fmt,
            "ingest_in_order": [{"platform": p, "file": path.name} for p, path in self.files],
            "summary": self.summary(),
        }
        (folder / "truth.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_PHONE = re.compile(r"^(?:\+?86)?(1\d{10})$")
_RESIDENT_ID = re.compile(r"^\d{17}[\dX]$")
_SEPARATORS = re.compile(r"[\s\-]")
UNKEYED = frozenset(("malformed_row", "platform_mismatch", "record_id_too_long"))


def canonical_subject(raw: str) -> str | None:
    """The canonical form of a subject (`m:…`, `id:…`), or None if it is malformed."""
    compact = _SEPARATORS.sub("", raw).upper()
    phone = _PHONE.match(compact)
    if phone:
        return "m:" + phone.group(1)
    if _RESIDENT_ID.match(compact) and id_check(compact[:17]) == compact[17]:
        return "id:" + compact
    return None


def _parse_ms(text: str | None) -> int | None:
    if text is None or not _TIMESTAMP.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def _milli(text: str | None) -> int | None:
    if text is None or not _NUMBER.match(text):
        return None
    try:
        return int((Decimal(text.strip()) * 1000).to_integral_value(rounding=ROUND_FLOOR))
    except InvalidOperation:
        return None


def _float(text: str | None) -> float | None:
    if text is None or not _NUMBER.match(text):
        return None
    return float(text)


@dataclass(slots=True)
class _Quant:
    methodology: str
    reduction: Decimal
    day_g: int | None
    day_n: int | None
    month_g: int | None
    month_n: int | None


class Referee:
    """Decides, independently of the product, the receipt of each row in receive order, from the
    activity-record v1 contract and the shipped methodology files."""

    def __init__(self, catalogue: Catalogue, received_at: datetime) -> None:
        self.catalogue = catalogue
        self.regions = frozenset(catalogue.regions.codes())
        self.received_ms = (received_at - _EPOCH) // timedelta(milliseconds=1)
        self.stored: dict[tuple[str, str], tuple[tuple[object, ...], Expected]] = {}
        self.seen: Counter[tuple[str, str | None]] = Counter()
        self.refs: set[tuple[str, str]] = set()
        self.trips: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
        self.day_n: Counter[tuple[str, str, int]] = Counter()
        self.day_g: Counter[tuple[str, str, int]] = Counter()
        self.month_n: Counter[tuple[str, str, int]] = Counter()
        self.month_g: Counter[tuple[str, str, int]] = Counter()
        self.quantities: dict[tuple[str, str, str, int], _Quant | None] = {}
        self.speed = MAX_SPEED_KMH
        self.share = Decimal(1) - Decimal(STRAIGHT_LINE_TOLERANCE_SHARE)

    def receive(
        self, platform: str, file: str, row: int, values: list[str | None] | None, record_id: str | None, scenario: str
    ) -> Expected:
        """The receipt of the next row received from `platform`."""
        occurrence = self.seen[(platform, record_id)]
        if record_id is not None:
            self.seen[(platform, record_id)] += 1

        def receipt(status: str, reasons: Iterable[str], grams: int = 0, methodology: str | None = None, subject: str | None = None, replay: bool = False) -> Expected:
            return Expected(platform, file, row, record_id, occurrence, status, frozenset(reasons), grams, methodology, subject, scenario, replay)

        if values is None:
            return receipt("rejected", ["malformed_row"])
        v = values
        reasons, parsed = self._check(platform, v)
        subject, scene, region, start_ms, end_ms, milli, kind = parsed
        if v[RECORD_ID] is None or v[PLATFORM] is None or UNKEYED & set(reasons):
            return receipt("rejected", reasons, subject=subject)
        key = (platform, v[RECORD_ID])
        material = (v[MATERIAL] or "") if scene == "recycling" else ""
        ref = v[REF].strip().lower() if v[REF] is not None else None
        digest = (subject or v[SUBJECT], scene, region, start_ms or v[START], end_ms or v[END],
                  milli if milli is not None else (v[DISTANCE] if kind == "trip" else v[QUANTITY]),
                  material, ref, *(_float(c) for c in v[O_LAT:D_LON + 1]), v[DEVICE])  # fmt: skip
        if key in self.stored:
            first_digest, first = self.stored[key]
            if first_digest == digest:
                return receipt(first.status, first.reasons, first.reduction_g, first.methodology, first.subject, replay=True)
            return receipt("rejected", ["conflict"], subject=subject)
        if reasons:
            out = receipt("rejected", reasons, subject=subject)
            self.stored[key] = (digest, out)
            return out
        assert subject is not None and scene is not None and region is not None
        assert start_ms is not None and milli is not None
        day = (start_ms + CHINA_MS) // DAY_MS
        q = self._quantify(scene, region, material, day)
        if q is None:
            out = receipt("rejected", ["no_methodology"], subject=subject)
            self.stored[key] = (digest, out)
            return out
        dups = []
        if ref is not None:
            if (scene, ref) in self.refs:
                dups.append("duplicate_ref")
            self.refs.add((scene, ref))
        if kind == "trip":
            assert end_ms is not None
            claims = self.trips[subject]
            for s, e in claims:
                overlap = min(e, end_ms) - max(s, start_ms)
                if overlap > 0 and 2 * overlap > min(e - s, end_ms - start_ms):
                    dups.append("duplicate_overlap")
                    break
            claims.append((start_ms, end_ms))
        if dups:
            out = receipt("duplicate", dups, 0, q.methodology, subject)
            self.stored[key] = (digest, out)
            return out
        computed = int(Decimal(milli) * q.reduction // 1000)
        month = _month_of(day)
        dk, mk = (subject, scene, day), (subject, scene, month)
        self.day_n[dk] += 1
        self.month_n[mk] += 1
        within = (q.day_n is None or self.day_n[dk] <= q.day_n) and (q.month_n is None or self.month_n[mk] <= q.month_n)
        grams = computed if within else 0
        if q.day_g is not None:
            grams = min(grams, max(0, q.day_g - self.day_g[dk]))
        if q.month_g is not None:
            grams = min(grams, max(0, q.month_g - self.month_g[mk]))
        self.day_g[dk] += grams
        self.month_g[mk] += grams
        out = receipt("credited", ["capped"] if grams < computed else [], grams, q.methodology, subject)
        self.stored[key] = (digest, out)
        return out

    def _check(self, platform: str, v: list[str | None]) -> tuple[list[str], tuple[str | None, str | None, str | None, int | None, int | None, int | None, str | None]]:
        """Every reason a record fails, and its parsed subject, scene, region, start, end,
        amount in thousandths and kind."""
        reasons = []
        scene, region = v[SCENE], v[REGION]
        kind = "trip" if scene in TRIP_SCENES else ("event" if scene in EVENT_SCENES else None)
        amount_raw = v[DISTANCE] if kind == "trip" else v[QUANTITY]
        start_ms, end_ms = _parse_ms(v[START]), _parse_ms(v[END])
        milli = _milli(amount_raw)
        subject = canonical_subject(v[SUBJECT]) if v[SUBJECT] is not None else None
        if any(v[i] is None for i in (PLATFORM, RECORD_ID, SUBJECT, SCENE, REGION, START)):
            reasons.append("missing_field")
        coords = [_float(c) for c in v[O_LAT:D_LON + 1]]
        ill = any(v[i] is not None and not _NUMBER.match(v[i] or "") for i in NUMERIC)
        ill |= (v[START] is not None and start_ms is None) or (v[END] is not None and end_ms is None)
        ill |= any(c is not None and not -90 <= c <= 90 for c in coords[0::2])
        ill |= any(c is not None and not -180 <= c <= 180 for c in coords[1::2])
        if ill:
            reasons.append("ill_typed_field")
        if v[RECORD_ID] is not None and len(v[RECORD_ID] or "") > 128:
            reasons.append("record_id_too_long")
        if v[PLATFORM] is not None and v[PLATFORM] != platform:
            reasons.append("platform_mismatch")
        if scene is not None and kind is None:
            reasons.append("unknown_scene")
        if region is not None and region not in self.regions:
            reasons.append("unknown_region")
        if v[SUBJECT] is not None and subject is None:
            reasons.append("malformed_subject")
        if scene == "recycling" and v[MATERIAL] is None:
            reasons.append("missing_material")
        if scene == "recycling" and v[MATERIAL] is not None and v[MATERIAL] not in MATERIALS:
            reasons.append("unknown_material")
        if kind == "trip" and amount_raw is None:
            reasons.append("missing_distance")
        if kind == "event" and amount_raw is None:
            reasons.append("missing_quantity")
        if kind == "trip" and v[END] is None:
            reasons.append("missing_end")
        distance, quantity = _float(v[DISTANCE]), _float(v[QUANTITY])
        if (milli is not None and milli < 0) or (distance is not None and distance < 0) or (quantity is not None and quantity < 0):
            reasons.append("negative_amount")
        if kind != "event" and start_ms is not None and end_ms is not None and end_ms < start_ms:
            reasons.append("end_before_start")
        if start_ms is not None and start_ms > self.received_ms + FUTURE_TOLERANCE_MS:
            reasons.append("start_in_future")
        if kind == "trip" and start_ms is not None and end_ms is not None:
            if end_ms <= start_ms:
                reasons.append("non_positive_duration")
            elif milli is not None and scene is not None and milli * 3600 > self.speed[scene] * (end_ms - start_ms):
                reasons.append("speed_implausible")
            if milli is not None and all(c is not None for c in coords):
                line = haversine_m(*coords)  # type: ignore[arg-type]
                if milli < line * float(self.share) - STRAIGHT_LINE_TOLERANCE_M:
                    reasons.append("distance_below_straight_line")
        return reasons, (subject, scene, region, start_ms, end_ms, milli, kind)

    def _quantify(self, scene: str, region: str, material: str, day: int) -> _Quant | None:
        key = (scene, region, material, day)
        if key not in self.quantities:
            on = date.fromordinal(_EPOCH_ORDINAL + day)
            try:
                unit = self.catalogue.quantify(scene, region, material, on)
            except FactorNotFoundError:
                unit = None
            if unit is None:
                self.quantities[key] = None
            else:
                rule = self.catalogue.get(unit.methodology).scenes[scene]
                d, m = rule.cap("day"), rule.cap("month")
                self.quantities[key] = _Quant(
                    unit.methodology, unit.reduction_g,
                    d.max_g if d else None, d.max_count if d else None,
                    m.max_g if m else None, m.max_count if m else None,
                )  # fmt: skip
        return self.quantities[key]


def _month_of(day: int) -> int:
    on = date.fromordinal(_EPOCH_ORDINAL + day)
    return on.year * 12 + on.month


# Entry points -----------------------------------------------------------------------------


def generate(
    out_dir: Path | str,
    records: int = 5000,
    seed: int = 1,
    fmt: str = "mixed",
    platforms: Iterable[str] | None = None,
    received_at: datetime | None = None,
) -> Truth:
    """Write about `records` rows of activity-record files into `out_dir` and return the truth.

    Args:
        out_dir: folder for the files (created if needed).
        records: number of rows written over all files.
        seed: same seed, same files.
        fmt: `jsonl`, `csv`, `parquet` for every file, or `mixed` (each platform its own:
            JSON Lines for amap, jingtong, meituan, byd; CSV for bjtransit, citic, sgcc;
            Parquet for szmetro, aihuishou).
        platforms: codes of the platforms to simulate (default: all of `PLATFORMS`).
        received_at: when the files will be ingested (for `start_in_future`; default now).
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    chosen = list(PLATFORMS) if platforms is None else list(platforms)
    unknown = set(chosen) - set(PLATFORMS)
    if unknown:
        raise ValueError(f"unknown platforms: {', '.join(sorted(unknown))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    builder = _Builder(seed, chosen)
    replays = round(records * REPLAY_SHARE)
    conflicts = round(records * CONFLICT_SHARE)
    invalid = round(records * INVALID_SHARE)
    target = max(records - replays - conflicts - invalid, 0)
    while builder.count < target:
        builder.citizen_month()
        if len(builder.citizens) > 10 * records + 100:
            break
    spare = records - builder.count - replays - conflicts
    builder.plant_defects(max(spare, 0), fmt)
    builder.plant_replays(max(records - builder.count - conflicts, 0), conflicts)

    referee = Referee(load_catalogue(), received_at or datetime.now(UTC))
    files: list[tuple[str, Path]] = []
    expected: list[Expected] = []
    for platform, part in FILE_ORDER:
        if platform not in builder.enabled:
            continue
        rows = builder.main[platform] if part == "main" else builder.resend[platform]
        if not rows:
            continue
        rows.sort(key=lambda r: r.key)
        kind = _format_of(platform, fmt)
        suffix = "" if part == "main" else "-resend"
        path = out / f"{platform}-2026-10{suffix}.{kind}"
        read = _write(path, kind, platform, rows)
        files.append((platform, path))
        for n, (row, (values, record_id)) in enumerate(zip(rows, read, strict=True), start=1):
            expected.append(referee.receive(platform, path.name, n, values, record_id, row.scenario))
    planted = [e for e in expected if e.scenario.startswith("invalid:") and e.occurrence == 0]
    for e in planted:
        wanted = DEFECTS[e.scenario.split(":", 1)[1]][0]
        if wanted not in e.reasons:  # pragma: no cover - a generator defect
            raise AssertionError(f"planted {e.scenario} got {e.reason} ({e.file}:{e.row})")
    spellings = {c.canonical: unused_spelling(c.digits) for c in builder.citizens}
    return Truth(files, expected, seed, records, fmt, spellings, dict(builder.heavy))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate files and their truth into a folder."""
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000, help="rows over all files")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="jsonl")
    parser.add_argument("--platforms", help="comma-separated platform codes (default: all)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    platforms = args.platforms.split(",") if args.platforms else None
    truth = generate(args.out, records=args.records, seed=args.seed, fmt=args.fmt, platforms=platforms)
    truth.write(args.out)
    elapsed = time.perf_counter() - started
    summary = truth.summary()
    print(f"{summary['rows']} rows, {summary['citizens']} citizens, {len(truth.files)} files in {args.out} ({elapsed:.1f} s)")
    print("ingest in this order:")
    for platform, path in truth.files:
        print(f"  puhui ingest --platform {platform} {path}")
    print(json.dumps({k: summary[k] for k in ("by_status", "by_reason", "credited_g")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
