"""Realistic activity-record files from several member platforms, with their ground truth.

This module owns the synthetic data of the end-to-end tests and the benchmarks: citizens living
in several cities, their behaviours in October 2026, the files each member platform writes about
them, and the receipt every written row must get (`Truth`).

What is simulated:

- Citizens, a few per ten records, identified by a mainland mobile number or an 18-character
  resident ID number (GB 11643 check digit, some ending in X), living in Beijing 110000,
  Tianjin 120000, Shanghai 310000, Hangzhou 330100, Wuhan 420100, Shenzhen 440300 or
  Chengdu 510100, and sometimes travelling to another of these cities.
- Their trips (walk, bike, bus, metro, ev), never overlapping each other, including multi-leg
  journeys whose legs touch (walk → metro → walk, walk → bus), and their events (recycling by
  material, paperless, no_cutlery, electricity saved).
- Member platforms, each writing its own file(s) (`PLATFORMS`):
  `amap` (map app: walk, bike, bus and metro legs, no `ref`, with coordinates),
  `bjtransit` (Beijing transit operator: bus and metro rides, card-tap `ref`),
  `szmetro` (Shenzhen metro: rides with a card-tap `ref`, millisecond timestamps, typed
  Parquet columns),
  `jingtong` (Beijing city app: re-reports some `bjtransit` rides and recycling receipts with
  the same `ref` in another case with surrounding spaces, and its own government e-services),
  `citic` (bank: e-statements with a `ref`), `aihuishou` (recycler: receipts with a `ref`),
  `meituan` (take-away orders without cutlery), `sgcc` (grid company: kWh saved in the month),
  `byd` (car maker: EV trips).
- The same ride seen by the map app and by the transit operator with clock skew (0–90 s on
  start and end) and no shared `ref`; a citizen's phone written differently by each platform
  (`+86 138 0013 8000`, `13800138000`, `138-0013-8000`, `86 13800138000`), ID numbers in upper
  or lower case or with spaces; timestamps in UTC (`Z`) or `+08:00`.
- Replays (a row sent again unchanged, in the same file or in a later re-send file, some with
  the identifier and times written another way), changed re-sends (conflicts), about 2.5 %
  planted invalid rows with one defect each (`DEFECTS`), some followed by their correction
  under a new record id (a rejected record blocks nothing), and a few citizens who go over a
  methodology cap on purpose.

The truth is computed independently of the product's code (`Referee`): each row is read back
as the activity-record v1 contract describes, checked against its rules, quantified with the
per-unit reductions of the shipped methodology files (`Catalogue.quantify`), then deduplicated
and capped in receive order. Receive order is the order of `Truth.files`: ingest the files in
that order, each by its platform (`puhui ingest --platform P FILE`), and every receipt matches.

Files are named `<platform>-2026-10.<format>` and `<platform>-2026-10-resend.<format>`. Large
data sets are built in `SHARDS` independent slices of citizens, in worker processes from
`PARALLEL_FROM` records on (a script calling `generate` then needs the usual
`if __name__ == "__main__":` guard, or `workers=1`); each slice has its own identifiers, record
ids and refs, so the output for a seed does not depend on the number of processes.

Library: `generate(out_dir, records=5000, seed=1, fmt="mixed") -> Truth`.
Command: `python -m bench.generate --records N --out DIR --seed S --format jsonl|csv|parquet|mixed`
writes the files, `truth.parquet` (one row per written row) and `truth.json` (file order and
totals) into DIR.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import gc
import itertools
import json
import math
import os
import random
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from multiprocessing import get_context
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from puhui.adapters.methodology_files import load_catalogue
from puhui.domain.errors import FactorNotFoundError
from puhui.domain.methodology import Catalogue
from puhui.domain.rules import (
    EARTH_RADIUS_M,
    LONGEST_TRIP_MS,
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
NUMERIC = (DISTANCE, QUANTITY, O_LAT, O_LON, D_LAT, D_LON)

TRIP_SCENES = ("walk", "bike", "bus", "metro", "ev")
EVENT_SCENES = ("recycling", "paperless", "no_cutlery", "electricity")
MATERIALS = ("paper", "plastic", "metal", "glass", "textile")
FORMATS = ("jsonl", "csv", "parquet", "mixed")

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
CHINA_MS = 8 * HOUR_MS
# 2026-10-01T00:00:00+08:00, the first instant of the simulated month in Asia/Shanghai.
OCTOBER_MS = int(datetime(2026, 9, 30, 16, tzinfo=UTC).timestamp()) * 1000
DAYS = 31
# Starts are accepted up to this long after the moment of receipt (platforms' clocks drift).
FUTURE_TOLERANCE_MS = 5 * MINUTE_MS
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MS = timedelta(milliseconds=1)

SHARDS = 8
# From this many records on, slices are built by worker processes.
PARALLEL_FROM = 50_000


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
        counties: county codes, the first six digits of residents' ID numbers.
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
_CITY_CUM = list(itertools.accumulate(c.weight for c in CITIES))


@dataclass(frozen=True, slots=True)
class Platform:
    """How one member platform writes its records.

    Attributes:
        code: platform code.
        role: what it is.
        fmt: its file format when every platform writes its own (`mixed`).
        phone: how it writes a mobile number (`spaced`, `plain`, `hyphen`, `country`).
        ids: how it writes a resident ID number (`upper`, `lower`, `spaced`).
        utc: timestamps in UTC (`Z`) rather than `+08:00`.
        millis: timestamps with milliseconds.
        numbers: typed numbers and times rather than text: JSON numbers in JSON Lines; double
            and timestamp (UTC, milliseconds) columns in Parquet.
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
                 True, True, "SZM-"),
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

# Files in the order they must be ingested: each platform's main file, then two re-sends.
# Beijing rides reach the clearing first from the operator, Shenzhen rides from the map app.
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

# Planted defects: name → (a reason the receipt must carry, which records it applies to).
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
TRIP_PLATFORMS = frozenset(("amap", "bjtransit", "szmetro", "byd"))
LOCATED_PLATFORMS = frozenset(("amap", "byd"))

INVALID_SHARE = 0.025
REPLAY_SHARE = 0.012
CONFLICT_SHARE = 0.003
# Of spoiled records, the share corrected later; of replays, the share written another way.
CORRECTED_SHARE = 0.4
RESPELLED_SHARE = 0.2
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
    """Write an identifier (11-digit mobile or 18-character ID) in a platform's style."""
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


def unused_spelling(canonical: str) -> str:
    """A spelling of a canonical identifier (`m:…`, `id:…`) that no platform writes."""
    digits = canonical.split(":", 1)[1]
    if len(digits) == 11:
        return f"+86-{digits[:3]}-{digits[3:7]}-{digits[7:]}"
    return f"{digits[:6]}-{digits[6:14]}-{digits[14:]}".lower()


_DAY_TEXT: dict[int, str] = {}
_CLOCK = [f"{h:02d}:{m:02d}:{sec:02d}" for h in range(24) for m in range(60) for sec in range(60)]


def stamp(ms: int, utc: bool, millis: bool = False) -> str:
    """RFC 3339 text of an instant, in UTC (`Z`) or Asia/Shanghai (`+08:00`)."""
    day, rest = divmod(ms if utc else ms + CHINA_MS, DAY_MS)
    text = _DAY_TEXT.get(day)
    if text is None:
        text = _DAY_TEXT[day] = date.fromordinal(_EPOCH_ORDINAL + day).isoformat()
    seconds, fraction = divmod(rest, 1000)
    if millis:
        return f"{text}T{_CLOCK[seconds]}.{fraction:03d}{'Z' if utc else '+08:00'}"
    return f"{text}T{_CLOCK[seconds]}{'Z' if utc else '+08:00'}"


def km(value: float, places: int = 3) -> str:
    """A distance or quantity as decimal text."""
    return f"{value:.{places}f}"


def _move(lat: float, lon: float, distance_km: float, bearing: float) -> tuple[float, float]:
    """The point `distance_km` away from (lat, lon) along a bearing (radians), approximately."""
    return (
        lat + distance_km * math.cos(bearing) / 111.32,
        lon + distance_km * math.sin(bearing) / (111.32 * math.cos(math.radians(lat))),
    )


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres."""
    a = (
        math.sin(math.radians(lat2 - lat1) / 2) ** 2
        + math.cos(math.radians(lat1))
        * math.cos(math.radians(lat2))
        * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def _format_of(platform: str, fmt: str) -> str:
    """The format a platform's files are written in."""
    return PLATFORMS[platform].fmt if fmt == "mixed" else fmt


_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


_TEMPLATES: dict[tuple[bool, tuple[int, ...]], str] = {}


def _json_line(values: Sequence[str | None], numbers: bool) -> str:
    """One record as a JSON object on one line; absent fields are left out."""
    present = tuple(i for i, v in enumerate(values) if v is not None)
    cells = [values[i] for i in present]
    if _NEEDS_ESCAPE.search("".join(cells)):  # type: ignore[arg-type]
        return json.dumps(
            {
                FIELDS[i]: float(values[i]) if numbers and i in NUMERIC else values[i]  # type: ignore[arg-type]
                for i in present
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )
    template = _TEMPLATES.get((numbers, present))
    if template is None:
        template = _TEMPLATES[(numbers, present)] = (
            "{"
            + ",".join(
                f'"{FIELDS[i]}":%s' if numbers and i in NUMERIC else f'"{FIELDS[i]}":"%s"'
                for i in present
            )
            + "}"
        )
    return template % tuple(cells)


class Row:
    """One written row: the 16 field values (text or None) and what it was planted as.

    `raw` holds the literal content of a row that is not a record (a broken JSON line, the
    cells of a CSV row of the wrong width); `key` orders the rows of a file.
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

    digits: str
    city: City
    uses_map: bool
    has_card: bool
    device: str
    cursor: dict[int, int] = field(default_factory=dict)
    spellings: dict[str, str] = field(default_factory=dict)

    def written(self, platform: Platform) -> str:
        """The identifier as this platform writes it."""
        found = self.spellings.get(platform.code)
        if found is None:
            style = platform.ids if len(self.digits) == 18 else platform.phone
            found = self.spellings[platform.code] = spell(self.digits, style)
        return found


# Behaviours -------------------------------------------------------------------------------

_BEHAVIOURS = ("metro", "bus", "walk", "bike", "ev", "recycling", "paperless", "no_cutlery",
               "electricity", "gov")  # fmt: skip
_BEHAVIOUR_CUM = list(itertools.accumulate((20, 14, 12, 10, 5, 8, 12, 14, 3, 2)))
_MATERIAL_CUM = list(itertools.accumulate((45, 25, 10, 10, 10)))
_HEAVY = ("bus", "metro", "walk", "bike", "paperless", "no_cutlery", "recycling", "electricity",
          "ev")  # fmt: skip


class _Builder:
    """Simulates one slice of citizens and what each platform reports about them."""

    def __init__(self, seed: int, shard: int, platforms: Iterable[str]) -> None:
        self.rng = random.Random(seed * 1009 + shard)
        self.random = self.rng.random
        self.shard = shard
        self.enabled = frozenset(platforms)
        self.main: dict[str, list[Row]] = {p: [] for p in PLATFORMS}
        self.resend: dict[str, list[Row]] = {p: [] for p in PLATFORMS}
        self.counters: Counter[str] = Counter()
        self.citizens: list[Citizen] = []
        self.used: set[str] = set()
        self.count = 0
        self.heavy: Counter[str] = Counter()

    def _int(self, low: int, high: int) -> int:
        """A random integer in [low, high)."""
        return low + int(self.random() * (high - low))

    def _uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def _pick(self, cumulative: list[int], items: Sequence[str]) -> str:
        return items[bisect.bisect_right(cumulative, self.random() * cumulative[-1])]

    # identities --------------------------------------------------------------------------

    def _citizen(self) -> Citizen:
        city = CITIES[bisect.bisect_right(_CITY_CUM, self.random() * _CITY_CUM[-1])]
        while True:
            if self.random() < 0.75:
                number = self._int(0, 10**8 // SHARDS) * SHARDS + self.shard
                digits = _PHONE_PREFIXES[self._int(0, len(_PHONE_PREFIXES))] + f"{number:08d}"
            else:
                born = date(1950, 1, 1) + timedelta(days=self._int(0, 20_000))
                sequence = self._int(0, 1000 // SHARDS) * SHARDS + self.shard
                county = city.counties[self._int(0, len(city.counties))]
                first17 = f"{county}{born:%Y%m%d}{sequence:03d}"
                digits = first17 + id_check(first17)
            if digits not in self.used:
                break
        self.used.add(digits)
        citizen = Citizen(
            digits=digits,
            city=city,
            uses_map=self.random() < 0.7,
            has_card=self.random() < 0.85,
            device=f"{self.rng.getrandbits(64):016x}",
        )
        self.citizens.append(citizen)
        return citizen

    def _id(self, platform: str) -> str:
        self.counters[platform] += 1
        return f"{PLATFORMS[platform].prefix}{self.shard}{self.counters[platform]:09d}"

    def _ref(self, kind: str) -> str:
        self.counters["ref:" + kind] += 1
        n = self.counters["ref:" + kind] * SHARDS + self.shard
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

    def _emit(self, platform: str, values: list[str | None], scenario: str) -> None:
        rows = self.main[platform]
        rows.append(Row(values, scenario, float(len(rows))))
        self.count += 1

    def _trip(
        self,
        platform: str,
        citizen: Citizen,
        scene: str,
        region: str,
        span: tuple[int, int],
        distance: str,
        scenario: str,
        ref: str | None = None,
        coords: tuple[float, float, float, float] | None = None,
    ) -> None:
        if platform not in self.enabled:
            return
        p = PLATFORMS[platform]
        values: list[str | None] = [
            platform,
            self._id(platform),
            citizen.written(p),
            scene,
            region,
            stamp(span[0], p.utc, p.millis),
            stamp(span[1], p.utc, p.millis),
            distance,
            None,
            None,
            ref,
            None,
            None,
            None,
            None,
            None,
        ]
        if coords is not None:
            values[O_LAT : D_LON + 1] = [f"{c:.6f}" for c in coords]
            values[DEVICE] = citizen.device
        self._emit(platform, values, scenario)

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
    ) -> None:
        if platform not in self.enabled:
            return
        p = PLATFORMS[platform]
        values: list[str | None] = [
            platform,
            self._id(platform),
            citizen.written(p),
            scene,
            region,
            stamp(at_ms, p.utc, p.millis),
            None,
            None,
            quantity,
            material,
            ref,
            None,
            None,
            None,
            None,
            None,
        ]
        self._emit(platform, values, scenario)

    def _slot(
        self,
        citizen: Citizen,
        duration_ms: int,
        day: int | None = None,
        gap: tuple[int, int] = (15, 150),
    ) -> int:
        """Reserve a time for a trip of the citizen and return its start. A citizen's trips of
        a day follow each other with a gap, so they never overlap."""
        for _ in range(50):
            d = self._int(0, DAYS) if day is None else day
            start = citizen.cursor.get(d)
            if start is None:
                start = OCTOBER_MS + d * DAY_MS + self._int(390 * 60, 540 * 60) * 1000
            last = OCTOBER_MS + (d + 1) * DAY_MS - 30 * MINUTE_MS
            if start + duration_ms <= last or day is not None:
                citizen.cursor[d] = start + duration_ms + self._int(*gap) * MINUTE_MS
                return start
        raise RuntimeError("no free time left for a trip")  # pragma: no cover

    def _moment(self, day: int | None = None) -> int:
        d = self._int(0, DAYS) if day is None else day
        return OCTOBER_MS + d * DAY_MS + self._int(8 * 3600, 22 * 3600) * 1000

    def _place(self, city: City) -> tuple[float, float]:
        return _move(city.lat, city.lon, self._uniform(0, 12), self._uniform(0, 2 * math.pi))

    def _leg(self, origin: tuple[float, float], measured_km: float) -> tuple[float, ...]:
        """Origin and destination of a leg measured at `measured_km`: the straight line between
        them is shorter by a detour factor."""
        lat, lon = origin
        straight = measured_km / self._uniform(1.15, 1.5)
        dest = _move(lat, lon, straight, self._uniform(0, 2 * math.pi))
        return lat, lon, dest[0], dest[1]

    def _trip_city(self, citizen: Citizen) -> City:
        if self.random() < 0.05:
            return CITIES[self._int(0, len(CITIES))]
        return citizen.city

    def _walk_leg(self) -> tuple[float, int]:
        distance = self._uniform(0.5, 1.2)
        return distance, int(distance / self._uniform(4.0, 5.0) * 3600) * 1000

    def transit_journey(
        self,
        citizen: Citizen,
        scene: str,
        day: int | None = None,
        gap: tuple[int, int] = (15, 150),
        legs: bool = True,
        scenario: str = "journey",
    ) -> None:
        """A bus or metro ride, usually with walking legs that touch it, seen by the map app
        (every leg, no ref), the city's transit operator (the ride, card-tap ref, clock skew)
        and, in Beijing, sometimes again by the city app (same ref, another spelling)."""
        city = self._trip_city(citizen)
        walk_before = legs and (scene == "metro" or self.random() < 0.5)
        walk_after = legs and scene == "metro"
        w1, w1_ms = self._walk_leg() if walk_before else (0.0, 0)
        w2, w2_ms = self._walk_leg() if walk_after else (0.0, 0)
        if scene == "metro":
            true_km = self._uniform(3, 20)
            ride_s = int(true_km / self._uniform(28, 38) * 3600) + self._int(60, 240)
        else:
            true_km = self._uniform(1.5, 12)
            ride_s = int(true_km / self._uniform(12, 22) * 3600) + self._int(30, 180)
        t0 = self._slot(citizen, w1_ms + ride_s * 1000 + w2_ms, day, gap)
        t1 = t0 + w1_ms
        t2 = t1 + ride_s * 1000
        t3 = t2 + w2_ms
        operator = city.operator if scene in city.operator_scenes and citizen.has_card else None
        on_map = citizen.uses_map
        tag = f"{scenario}:{scene}"
        if on_map:
            here = self._place(city)
            if walk_before:
                c = self._leg(here, w1)
                self._trip(
                    "amap", citizen, "walk", city.code, (t0, t1), km(w1), tag + ":walk", coords=c
                )
                here = (c[2], c[3])
            mapped = true_km * self._uniform(0.97, 1.05)
            c = self._leg(here, mapped)
            # The map app now and then takes a metro ride for a bus ride, or the other way.
            label = scene if self.random() > 0.03 else ("bus" if scene == "metro" else "metro")
            places = 4 if self.random() < 0.1 else 3
            self._trip(
                "amap",
                citizen,
                label,
                city.code,
                (t1, t2),
                km(mapped, places),
                tag + ":ride",
                coords=c,
            )
            if walk_after:
                c2 = self._leg((c[2], c[3]), w2)
                self._trip(
                    "amap", citizen, "walk", city.code, (t2, t3), km(w2), tag + ":walk", coords=c2
                )
        if operator is not None:
            ref = self._ref("tap" if operator == "bjtransit" else "sztap")
            skew = (self._int(-90, 91), self._int(-90, 91)) if on_map else (0, 0)
            millis = self._int(0, 1000) if operator == "szmetro" else 0
            s, e = t1 + skew[0] * 1000 + millis, t2 + skew[1] * 1000 + millis
            fare_km = km(round(true_km, 1), 1)
            self._trip(operator, citizen, scene, city.code, (s, e), fare_km, tag + ":tap", ref=ref)
            if operator == "bjtransit" and self.random() < 0.3:
                spaced = " " * self._int(0, 3) + ref.lower() + " " * self._int(1, 3)
                again = (s + self._int(-30, 31) * 1000, e + self._int(-30, 31) * 1000)
                self._trip(
                    "jingtong",
                    citizen,
                    scene,
                    "110100",
                    again,
                    fare_km,
                    tag + ":city-app",
                    ref=spaced,
                )

    def simple_trip(
        self,
        citizen: Citizen,
        scene: str,
        day: int | None = None,
        distance: float | None = None,
        scenario: str = "trip",
    ) -> None:
        """A walk or a bike ride seen by the map app, or an EV trip seen by the car maker."""
        city = self._trip_city(citizen)
        slow, fast = {"walk": (4.0, 5.5), "bike": (10, 18), "ev": (25, 55)}[scene]
        short, long = {"walk": (1.0, 4.0), "bike": (2.0, 10.0), "ev": (5.0, 45.0)}[scene]
        d = self._uniform(short, long) if distance is None else distance
        duration = int(d / self._uniform(slow, fast) * 3600) * 1000
        start = self._slot(citizen, duration, day, (10, 150) if day is None else (5, 30))
        platform = "byd" if scene == "ev" else "amap"
        if platform == "amap" and not citizen.uses_map:
            return
        c = self._leg(self._place(city), d)
        places = 2 if scene == "ev" else (4 if self.random() < 0.1 else 3)
        self._trip(
            platform,
            citizen,
            scene,
            city.code,
            (start, start + duration),
            km(d, places),
            f"{scenario}:{scene}",
            coords=c,
        )

    def recycling(
        self,
        citizen: Citizen,
        material: str | None = None,
        kg: float | None = None,
        scenario: str = "event",
    ) -> None:
        """Recyclables handed in; a Beijing receipt is sometimes reported again by the city app."""
        material = material or self._pick(_MATERIAL_CUM, MATERIALS)
        if kg is None:
            kg = self._uniform(0.3, 4.0 if material == "textile" else 8.0)
        at = self._moment()
        ref = self._ref("receipt")
        city = citizen.city
        quantity = km(kg, 2)
        self._event(
            "aihuishou",
            citizen,
            "recycling",
            city.code,
            at,
            quantity,
            f"{scenario}:recycling",
            ref=ref,
            material=material,
        )
        if city.code == "110000" and self.random() < 0.25:
            self._event(
                "jingtong",
                citizen,
                "recycling",
                "110100",
                at + self._int(0, 600) * 1000,
                quantity,
                f"{scenario}:recycling:city-app",
                ref=f" {ref.lower()} ",
                material=material,
            )

    def paperless(self, citizen: Citizen, day: int | None = None, scenario: str = "event") -> None:
        """An e-statement from the bank."""
        self._event(
            "citic",
            citizen,
            "paperless",
            citizen.city.code,
            self._moment(day),
            "1",
            f"{scenario}:paperless",
            ref=self._ref("statement"),
        )

    def gov_service(self, citizen: Citizen) -> None:
        """An online government service in the Beijing city app."""
        if citizen.city.code == "110000":
            self._event(
                "jingtong",
                citizen,
                "paperless",
                "110100",
                self._moment(),
                "1",
                "event:paperless:city-app",
                ref=self._ref("gov"),
            )

    def no_cutlery(self, citizen: Citizen, day: int | None = None, scenario: str = "event") -> None:
        """A take-away order without disposable cutlery."""
        self._event(
            "meituan",
            citizen,
            "no_cutlery",
            citizen.city.code,
            self._moment(day),
            "1",
            f"{scenario}:no_cutlery",
            ref=self._ref("order"),
        )

    def electricity(
        self, citizen: Citizen, kwh: float | None = None, scenario: str = "event"
    ) -> None:
        """kWh saved in October against October last year, reported at the end of the month
        (by the State Grid, so not in Guangdong)."""
        if citizen.city.province == "440000":
            return
        kwh = self._uniform(3, 60) if kwh is None else kwh
        at = OCTOBER_MS + 30 * DAY_MS + self._int(20 * 3600, 23 * 3600) * 1000
        self._event(
            "sgcc",
            citizen,
            "electricity",
            citizen.city.province,
            at,
            km(kwh, 1),
            f"{scenario}:electricity",
        )

    def over_cap(self, citizen: Citizen) -> None:
        """A citizen who goes over a methodology cap on one day (or in the month) on purpose."""
        pattern = _HEAVY[self._int(0, len(_HEAVY))]
        if pattern == "electricity" and citizen.city.province == "440000":
            pattern = "recycling"
        self.heavy[pattern] += 1
        day = self._int(0, DAYS)
        if pattern in ("bus", "metro"):
            if citizen.city.operator is None or pattern not in citizen.city.operator_scenes:
                citizen.uses_map = True
            for _ in range(12 if pattern == "bus" else 7):
                self.transit_journey(
                    citizen, pattern, day=day, gap=(3, 15), legs=False, scenario="over-cap"
                )
        elif pattern in ("walk", "bike"):
            citizen.uses_map = True
            for _ in range(3 if pattern == "walk" else 2):
                distance = self._uniform(2.8, 3.5) if pattern == "walk" else self._uniform(12, 15)
                self.simple_trip(citizen, pattern, day, distance, "over-cap")
        elif pattern == "ev":
            for _ in range(3):
                self.simple_trip(citizen, "ev", day, self._uniform(110, 130), "over-cap")
        elif pattern == "paperless":
            for _ in range(7):
                self.paperless(citizen, day=day, scenario="over-cap")
        elif pattern == "no_cutlery":
            for _ in range(4):
                self.no_cutlery(citizen, day=day, scenario="over-cap")
        elif pattern == "recycling":
            self.recycling(citizen, "textile", self._uniform(6.5, 8.0), scenario="over-cap")
        else:
            self.electricity(citizen, self._uniform(100, 140), scenario="over-cap")

    def citizen_month(self) -> None:
        """One citizen and their behaviours in October."""
        citizen = self._citizen()
        if self.random() < HEAVY_SHARE:
            self.over_cap(citizen)
        n = 1
        while self.random() < 0.55:
            n += 1
        electricity_done = False
        for _ in range(n):
            what = self._pick(_BEHAVIOUR_CUM, _BEHAVIOURS)
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
        """A valid record of the platform for a random citizen, to be spoiled (a trip takes a
        free time of the citizen, so that its correction is a behaviour of its own)."""
        citizen = self.citizens[self._int(0, len(self.citizens))]
        city = citizen.city
        p = PLATFORMS[platform]
        values: list[str | None] = [platform, self._id(platform), citizen.written(p), None]
        values += [city.code, stamp(self._moment(), p.utc, p.millis)] + [None] * 10
        if platform in TRIP_PLATFORMS:
            scene = {
                "amap": "walk" if self.random() < 0.5 else "bike",
                "byd": "ev",
                "szmetro": "metro",
            }.get(platform, "bus" if self.random() < 0.5 else "metro")
            distance = self._uniform(1.0, 4.0) if scene == "walk" else self._uniform(3.0, 15.0)
            speed = {"walk": 4.5, "bike": 14, "ev": 40, "bus": 18, "metro": 32}[scene]
            values[SCENE] = scene
            duration = int(distance / speed * 3600) * 1000
            start = self._slot(citizen, duration)
            values[START] = stamp(start, p.utc, p.millis)
            values[END] = stamp(start + duration, p.utc, p.millis)
            values[DISTANCE] = km(distance, 1 if platform in ("bjtransit", "szmetro") else 3)
            if platform == "szmetro":
                values[REGION] = "440300"
                values[REF] = self._ref("sztap")
            elif platform == "bjtransit":
                values[REGION] = "110000"
                values[REF] = self._ref("tap")
            if platform in LOCATED_PLATFORMS:
                leg = self._leg(self._place(city), distance)
                values[O_LAT : D_LON + 1] = [f"{c:.6f}" for c in leg]
        else:
            scene = {
                "citic": "paperless",
                "aihuishou": "recycling",
                "meituan": "no_cutlery",
                "sgcc": "electricity",
                "jingtong": "paperless",
            }[platform]
            values[SCENE] = scene
            values[QUANTITY] = "1"
            if scene == "recycling":
                values[QUANTITY] = km(self._uniform(0.5, 5), 2)
                values[MATERIAL] = MATERIALS[self._int(0, len(MATERIALS))]
            elif scene == "electricity":
                values[QUANTITY] = km(self._uniform(3, 40), 1)
                values[REGION] = city.province
            if platform == "jingtong":
                values[REGION] = "110100"
        return Row(values, "")

    def _choice(self, options: Sequence[str]) -> str:
        return options[self._int(0, len(options))]

    def _spoil(self, row: Row, defect: str, fmt: str) -> None:
        v = row.values
        row.scenario = "invalid:" + defect
        if defect == "missing_region":
            v[REGION] = None
        elif defect == "missing_subject":
            v[SUBJECT] = None
        elif defect == "missing_record_id":
            v[RECORD_ID] = None
        elif defect == "unknown_scene":
            v[SCENE] = self._choice(("scooter", "carpool", "taxi", "donation"))
        elif defect == "region_not_real":
            v[REGION] = self._choice(("999999", "000000", "990100"))
        elif defect == "region_district":
            v[REGION] = self._choice(("110101", "110105", "440305", "510104", "310115"))
        elif defect == "subject_short":
            v[SUBJECT] = self._choice(("1380013800", "2380013800", "+86 138 0013 800", "user-8812"))
        elif defect == "subject_check_digit":
            first17 = (
                f"{CITIES[self._int(0, len(CITIES))].counties[0]}19880808{self._int(0, 1000):03d}"
            )
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
                v[O_LAT : D_LON + 1] = [None] * 4
            else:
                v[QUANTITY] = "-" + (v[QUANTITY] or "1")
        elif defect == "missing_distance":
            v[DISTANCE] = None
        elif defect == "missing_quantity":
            v[QUANTITY] = None
        elif defect == "missing_end":
            v[END] = None
        elif defect == "speed":
            start, end = _parse_ms(v[START]) or 0, _parse_ms(v[END]) or 0
            limit = MAX_SPEED_KMH[v[SCENE] or "walk"] * (end - start) / HOUR_MS
            v[DISTANCE] = km(limit * self._uniform(1.4, 2.5) + 1, 1)
            v[O_LAT : D_LON + 1] = [None] * 4
        elif defect == "below_straight_line":
            lat1, lon1, lat2, lon2 = (float(c or 0) for c in v[O_LAT : D_LON + 1])
            line_km = haversine_m(lat1, lon1, lat2, lon2) / 1000
            v[DISTANCE] = km(line_km * self._uniform(0.3, 0.6), 3)
        elif defect == "timestamp_without_offset":
            v[START] = (v[START] or "")[:19]
        elif defect == "missing_material":
            v[MATERIAL] = None
        elif defect == "unknown_material":
            v[MATERIAL] = self._choice(("wood", "ewaste", "Paper "))
        elif defect == "platform_mismatch":
            v[PLATFORM] = self._choice([p for p in PLATFORMS if p != v[PLATFORM]])
        elif defect == "malformed_row":
            platform = v[PLATFORM] or "amap"
            if _format_of(platform, fmt) == "jsonl":
                line = _json_line(v, PLATFORMS[platform].numbers)
                row.raw = self._choice(
                    (line[: len(line) // 2], line.replace('":', '" ', 1), "not json")
                )
            else:
                row.raw = [c or "" for c in v] + ["extra"]

    def plant_defects(self, n: int, fmt: str, order: Sequence[str], first: int) -> None:
        """Add `n` rows: fresh records spoiled with one defect each, taking defects in turn from
        `order` starting at position `first`, some followed later by their correction (the
        record as it should have been, under a new record id)."""
        sizes = {p: len(rows) for p, rows in self.main.items() if p in self.enabled and rows}
        added, i = 0, 0
        while added < n:
            defect = order[(first + i) % len(order)]
            i += 1
            applies = DEFECTS[defect][1]
            eligible = [
                p
                for p in sizes
                if applies == "any"
                or (applies == "trip" and p in TRIP_PLATFORMS)
                or (applies == "event" and p not in TRIP_PLATFORMS)
                or (applies == "located" and p in LOCATED_PLATFORMS)
                or (applies == "recycling" and p == "aihuishou")
                or (applies == "text" and _format_of(p, fmt) != "parquet")
            ]
            if defect == "timestamp_without_offset":
                # A typed timestamp column cannot hold a time without its offset.
                typed = [
                    p for p in eligible if PLATFORMS[p].numbers and _format_of(p, fmt) == "parquet"
                ]
                eligible = [p for p in eligible if p not in typed]
            if not eligible:
                defect, eligible = "unknown_scene", list(sizes)
            if not eligible:
                return
            weights = list(itertools.accumulate(sizes[p] for p in eligible))
            platform = eligible[bisect.bisect_right(weights, self.random() * weights[-1])]
            row = self._base(platform)
            pristine = list(row.values)
            self._spoil(row, defect, fmt)
            row.key = self.random() * sizes[platform]
            self.main[platform].append(row)
            added += 1
            if added < n and self.random() < CORRECTED_SHARE:
                pristine[RECORD_ID] = self._id(platform)
                self._later(platform, row, Row(pristine, "correction:" + defect))
                added += 1
        self.count += added

    def _later(self, platform: str, original: Row, row: Row) -> None:
        """Place a row after another one: later in the same file, or in the re-send file."""
        if platform in RESENDING and self.random() < 0.5:
            row.key = self.random()
            self.resend[platform].append(row)
        else:
            size = len(self.main[platform])
            row.key = original.key + 0.5 + self.random() * max(size - original.key, 1.0)
            self.main[platform].append(row)

    def plant_replays(self, replays: int, conflicts: int) -> None:
        """Send some records again, unchanged (replays) or changed (conflicts), later in the
        same file or in the platform's re-send file."""
        pool = [
            (p, row)
            for p, rows in self.main.items()
            for row in rows
            if p in self.enabled and not row.scenario.startswith("invalid")
        ]
        if not pool:
            return
        for i in range(replays + conflicts):
            platform, original = pool[self._int(0, len(pool))]
            values = list(original.values)
            if i >= replays:
                scenario = "conflict"
                if values[DISTANCE] is not None:
                    values[DISTANCE] = km(float(values[DISTANCE]) * 1.2 + 0.3, 3)
                else:
                    counted = values[SCENE] in ("paperless", "no_cutlery")
                    values[QUANTITY] = km(float(values[QUANTITY] or 0) + 1, 0 if counted else 2)
            elif self.random() < RESPELLED_SHARE:
                # The same content written another way: identifier and times respelled.
                scenario = "replay:respelled"
                canonical = canonical_subject(values[SUBJECT] or "") or ":"
                values[SUBJECT] = canonical.split(":", 1)[1]
                p = PLATFORMS[platform]
                for i_time in (START, END):
                    moment = _parse_ms(values[i_time])
                    if moment is not None:
                        values[i_time] = stamp(moment, not p.utc, p.millis)
            else:
                scenario = "replay"
            self._later(platform, original, Row(values, scenario))
            self.count += 1


# Truth ------------------------------------------------------------------------------------


class Expected(NamedTuple):
    """The receipt one written row must get.

    Attributes:
        platform: the platform whose file holds it.
        file: the file's name; `row` its position there (from 1, as receipts count).
        record_id: the record id the receipt names (None when the row has none, or for a line
            that is not JSON).
        occurrence: how many rows with this (platform, record_id) were received before it.
        status: `credited`, `duplicate` or `rejected`.
        reasons: the reason codes of the receipt.
        reduction_g: grams on the receipt.
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


TRUTH_SCHEMA = pa.schema(
    [
        ("platform", pa.string()),
        ("file", pa.string()),
        ("row", pa.int64()),
        ("record_id", pa.string()),
        ("occurrence", pa.int32()),
        ("status", pa.string()),
        ("reason", pa.string()),
        ("reduction_g", pa.int64()),
        ("methodology", pa.string()),
        ("subject", pa.string()),
        ("scenario", pa.string()),
        ("replay", pa.bool_()),
    ]
)


def _truth_table(expected: list[Expected]) -> pa.Table:
    columns = list(zip(*expected, strict=True)) if expected else [()] * len(TRUTH_SCHEMA)
    arrays = []
    for i, f in enumerate(TRUTH_SCHEMA):
        values = columns[i]
        if f.name == "reason":
            values = tuple(";".join(sorted(r)) for r in values)
        arrays.append(pa.array(values, f.type))
    return pa.Table.from_arrays(arrays, schema=TRUTH_SCHEMA)


@dataclass
class Truth:
    """Ground truth of a generated data set.

    Attributes:
        files: (platform, path) in the order they must be ingested.
        table: one row per written row, in receive order (columns of `Expected`, `reason`
            joined with `;`).
        seed, records, fmt: how it was generated.
        citizens: number of citizens simulated.
        over_cap: over-cap patterns planted, by scene.
    """

    files: list[tuple[str, Path]]
    table: pa.Table
    seed: int
    records: int
    fmt: str
    citizens: int
    over_cap: dict[str, int]

    @functools.cached_property
    def expected(self) -> list[Expected]:
        """The receipt of every written row, in receive order."""
        return [
            Expected(
                r["platform"],
                r["file"],
                r["row"],
                r["record_id"],
                r["occurrence"],
                r["status"],
                frozenset(x for x in r["reason"].split(";") if x),
                r["reduction_g"],
                r["methodology"],
                r["subject"],
                r["scenario"],
                r["replay"],
            )
            for r in self.table.to_pylist()
        ]

    @property
    def platforms(self) -> list[str]:
        """Platforms that wrote at least one file, in first-file order."""
        return list(dict.fromkeys(p for p, _ in self.files))

    @property
    def total_g(self) -> int:
        """Grams credited, each record once (a replay repeats a receipt and credits nothing)."""
        own = self.table.filter(pc.invert(self.table.column("replay")))
        return int(pc.sum(own.column("reduction_g")).as_py() or 0)

    def receipt(self, platform: str, record_id: str, occurrence: int = 0) -> Expected:
        """The expected receipt of the n-th row received with this (platform, record_id)."""
        for e in self.expected:
            if (e.platform, e.record_id, e.occurrence) == (platform, record_id, occurrence):
                return e
        raise KeyError((platform, record_id, occurrence))

    def by_position(self) -> dict[tuple[str, int], Expected]:
        """Expected receipts by (file name, row)."""
        return {(e.file, e.row): e for e in self.expected}

    def balances(self) -> dict[str, int]:
        """Grams credited per citizen (canonical identifier)."""
        own = self.table.filter(
            pc.and_(
                pc.invert(self.table.column("replay")), pc.greater(self.table["reduction_g"], 0)
            )
        )
        sums = own.group_by("subject").aggregate([("reduction_g", "sum")])
        return dict(
            zip(sums["subject"].to_pylist(), sums["reduction_g_sum"].to_pylist(), strict=True)
        )

    @staticmethod
    def spelling(canonical: str) -> str:
        """A spelling of a citizen's identifier that no generated file uses."""
        return unused_spelling(canonical)

    def summary(self) -> dict[str, object]:
        """Counts by status, reason, platform and scenario, and grams credited."""

        def counts(array: pa.Array | pa.ChunkedArray) -> dict[str, int]:
            found = pc.value_counts(array).to_pylist()
            return dict(sorted(((c["values"], c["counts"]) for c in found), key=lambda x: -x[1]))

        t = self.table
        reasons = pc.list_flatten(pc.split_pattern(t.column("reason"), ";"))
        reasons = pc.filter(reasons, pc.not_equal(reasons, ""))
        scenarios = pc.list_element(pc.split_pattern(t.column("scenario"), ":"), 0)
        return {
            "rows": t.num_rows,
            "citizens": self.citizens,
            "by_status": counts(t.column("status")),
            "by_reason": counts(reasons),
            "by_platform": counts(t.column("platform")),
            "by_scenario": counts(scenarios),
            "over_cap_patterns": self.over_cap,
            "credited_g": self.total_g,
        }

    def tour(self, platform: str = "amap", least_g: int = 2_000) -> dict[str, str]:
        """A citizen to show in a tour of the data, with one of their records from `platform`:
        of the mobile-number citizens `platform` reported, in receive order, the first
        credited by two platforms or more, with a duplicate among their records and at least
        `least_g` grams credited (a tour spends some of them); failing that, the one credited
        most. Their number is spelt as people write it (`+86 138 1755 2312`)."""
        credited_g: dict[str, int] = {}
        platforms: dict[str, set[str]] = {}
        duplicated: set[str] = set()
        for e in self.expected:
            if e.subject is None or e.replay:
                continue
            if e.status == "credited":
                credited_g[e.subject] = credited_g.get(e.subject, 0) + e.reduction_g
                platforms.setdefault(e.subject, set()).add(e.platform)
            elif e.status == "duplicate":
                duplicated.add(e.subject)
        candidates = [
            e
            for e in self.expected
            if e.platform == platform
            and e.status == "credited"
            and not e.replay
            and (e.subject or "").startswith("m:")
        ]
        if not candidates:
            raise ValueError(f"{platform} credited no mobile-number citizen")
        chosen = next(
            (
                e
                for e in candidates
                if len(platforms[e.subject or ""]) >= 2
                and e.subject in duplicated
                and credited_g[e.subject or ""] >= least_g
            ),
            max(candidates, key=lambda e: credited_g[e.subject or ""]),
        )
        digits = (chosen.subject or "").split(":", 1)[1]
        return {
            "subject": f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}",
            "platform": platform,
            "record_id": chosen.record_id or "",
        }

    def write(self, folder: Path) -> None:
        """Write `truth.parquet` (one row per written row) and `truth.json` (order, totals, a
        citizen to show in a tour)."""
        pq.write_table(self.table, folder / "truth.parquet")
        doc = {
            "seed": self.seed,
            "records": self.records,
            "format": self.fmt,
            "ingest_in_order": [{"platform": p, "file": path.name} for p, path in self.files],
            "summary": self.summary(),
            "tour": self.tour(),
        }
        (folder / "truth.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")


_TIMESTAMP = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
)
_NUMBER = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$")
_PHONE = re.compile(r"^(?:\+?86)?(1\d{10})$")
_RESIDENT_ID = re.compile(r"^\d{17}[\dX]$")
_SEPARATORS = re.compile(r"[\s\-]")
UNKEYED = frozenset(("malformed_row", "platform_mismatch", "record_id_too_long"))
_KIND = {**dict.fromkeys(TRIP_SCENES, "trip"), **dict.fromkeys(EVENT_SCENES, "event")}
_MALFORMED = frozenset(("malformed_row",))
_CONFLICT = frozenset(("conflict",))
_CAPPED = frozenset(("capped",))
_NONE: frozenset[str] = frozenset()
_UNSEEN = object()


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
    """Epoch milliseconds of an RFC 3339 timestamp with offset, or None."""
    if text is None or not _TIMESTAMP.match(text):
        return None
    try:
        moment = datetime.fromisoformat(text.upper())
    except ValueError:
        return None
    return (moment - _EPOCH) // _MS


def _milli(text: str) -> int | None:
    """An amount rounded down to thousandths, as an integer, or None if it is not a number."""
    if not _NUMBER.match(text):
        return None
    try:
        return int((Decimal(text.strip()) * 1000).to_integral_value(rounding=ROUND_FLOOR))
    except InvalidOperation:
        return None


@dataclass(slots=True)
class _Quant:
    """A methodology's reduction per unit, as an exact fraction, and its caps for a scene."""

    methodology: str
    numerator: int
    denominator: int
    day_g: int | None
    day_n: int | None
    month_g: int | None
    month_n: int | None


class Referee:
    """Decides, independently of the product, the receipt of each row in receive order, from the
    activity-record v1 contract and the shipped methodology files."""

    def __init__(self, catalogue: Catalogue, received_ms: int) -> None:
        self.catalogue = catalogue
        self.regions = frozenset(catalogue.regions.codes())
        self.received_ms = received_ms
        self.stored: dict[tuple[str, str], tuple[tuple[object, ...], Expected]] = {}
        self.seen: dict[tuple[str, str | None], int] = {}
        self.refs: set[tuple[str, str]] = set()
        self.trips: defaultdict[str, list[tuple[int, int]]] = defaultdict(list)
        # Records credited and grams credited per (citizen, scene, day) and (…, month): days
        # are day numbers since the epoch, months minus (year × 12 + month): keys never clash.
        self.counts: dict[tuple[str, str, int], int] = {}
        self.grams: dict[tuple[str, str, int], int] = {}
        self.quantities: dict[tuple[str, str, str, int], _Quant | None] = {}
        self.share = 1 - float(STRAIGHT_LINE_TOLERANCE_SHARE)
        self.subjects: dict[str, str | None] = {}

    def receive(
        self,
        platform: str,
        file: str,
        row: int,
        values: list[str | None] | None,
        record_id: str | None,
        scenario: str,
    ) -> Expected:
        """The receipt of the next row received from `platform` (`values` None: not a record)."""
        seen = (platform, record_id)
        occurrence = self.seen.get(seen, 0)
        if record_id is not None:
            self.seen[seen] = occurrence + 1
        if values is None:
            return Expected(
                platform,
                file,
                row,
                record_id,
                occurrence,
                "rejected",
                _MALFORMED,
                0,
                None,
                None,
                scenario,
            )
        v = values
        reasons, subject, kind, start_ms, end_ms, milli, coords = self._check(platform, v)
        if v[RECORD_ID] is None or v[PLATFORM] is None or not UNKEYED.isdisjoint(reasons):
            return Expected(
                platform,
                file,
                row,
                record_id,
                occurrence,
                "rejected",
                frozenset(reasons),
                0,
                None,
                subject,
                scenario,
            )
        scene = v[SCENE]
        key = (platform, v[RECORD_ID])
        material = (v[MATERIAL] or "") if scene == "recycling" else ""
        ref = v[REF].strip(" ").lower() if v[REF] is not None else None
        digest = (
            subject or v[SUBJECT],
            scene,
            v[REGION],
            v[START] if start_ms is None else start_ms,
            v[END] if end_ms is None else end_ms,
            milli if milli is not None else (v[DISTANCE] if kind == "trip" else v[QUANTITY]),
            material,
            ref,
            coords,
            v[DEVICE],
        )
        stored = self.stored.get(key)
        if stored is not None:
            first_digest, first = stored
            if first_digest == digest:
                return first._replace(
                    file=file, row=row, occurrence=occurrence, scenario=scenario, replay=True
                )
            return Expected(
                platform,
                file,
                row,
                record_id,
                occurrence,
                "rejected",
                _CONFLICT,
                0,
                None,
                subject,
                scenario,
            )
        status, why, grams, methodology = self._decide(
            reasons, subject, kind, scene, v[REGION], material, ref, start_ms, end_ms, milli
        )
        expected = Expected(
            platform,
            file,
            row,
            record_id,
            occurrence,
            status,
            why,
            grams,
            methodology,
            subject,
            scenario,
        )
        self.stored[key] = (digest, expected)
        return expected

    def _decide(
        self,
        reasons: list[str],
        subject: str | None,
        kind: str | None,
        scene: str | None,
        region: str | None,
        material: str,
        ref: str | None,
        start_ms: int | None,
        end_ms: int | None,
        milli: int | None,
    ) -> tuple[str, frozenset[str], int, str | None]:
        """Status, reasons, grams and methodology of a record received for the first time."""
        if reasons:
            return "rejected", frozenset(reasons), 0, None
        # A record without reasons has all of these.
        assert subject is not None
        assert scene is not None
        assert region is not None
        assert start_ms is not None
        assert milli is not None
        day = (start_ms + CHINA_MS) // DAY_MS
        q = self._quantify(scene, region, material, day)
        if q is None:
            return "rejected", frozenset(("no_methodology",)), 0, None
        # One behaviour, one credit: the same scene and ref, or an overlapping trip, is a
        # duplicate of the earlier record that is not rejected (duplicates keep their claim).
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
            return "duplicate", frozenset(dups), 0, q.methodology
        # Caps per citizen, scene and day or month (Asia/Shanghai), in receive order: count
        # caps first, then gram caps; a record over a count cap is credited nothing.
        computed = milli * q.numerator // q.denominator
        dk, mk = (subject, scene, day), (subject, scene, -_month_of(day))
        counts, grams_so_far = self.counts, self.grams
        n_day = counts[dk] = counts.get(dk, 0) + 1
        n_month = counts[mk] = counts.get(mk, 0) + 1
        within = (q.day_n is None or n_day <= q.day_n) and (
            q.month_n is None or n_month <= q.month_n
        )
        grams = computed if within else 0
        if q.day_g is not None:
            grams = min(grams, max(0, q.day_g - grams_so_far.get(dk, 0)))
        if q.month_g is not None:
            grams = min(grams, max(0, q.month_g - grams_so_far.get(mk, 0)))
        if grams:
            grams_so_far[dk] = grams_so_far.get(dk, 0) + grams
            grams_so_far[mk] = grams_so_far.get(mk, 0) + grams
        return "credited", _CAPPED if grams < computed else _NONE, grams, q.methodology

    def _subject(self, raw: str | None) -> str | None:
        if raw is None:
            return None
        found = self.subjects.get(raw, _UNSEEN)
        if found is _UNSEEN:
            found = self.subjects[raw] = canonical_subject(raw)
        return found  # type: ignore[return-value]

    def _check(
        self, platform: str, v: list[str | None]
    ) -> tuple[
        list[str],
        str | None,
        str | None,
        int | None,
        int | None,
        int | None,
        tuple[float | None, ...] | None,
    ]:
        """Every reason a record fails, with its canonical subject, kind, start, end, amount in
        thousandths and coordinates as read."""
        reasons = []
        scene, region, start_t, end_t = v[SCENE], v[REGION], v[START], v[END]
        kind = _KIND.get(scene) if scene is not None else None
        amount_raw = v[DISTANCE] if kind == "trip" else v[QUANTITY]
        start_ms, end_ms = _parse_ms(start_t), _parse_ms(end_t)
        subject = self._subject(v[SUBJECT])
        if (
            v[PLATFORM] is None
            or v[RECORD_ID] is None
            or v[SUBJECT] is None
            or scene is None
            or region is None
            or start_t is None
        ):
            reasons.append("missing_field")
        ill = (start_t is not None and start_ms is None) or (end_t is not None and end_ms is None)
        numbers: dict[int, float] = {}
        for i in NUMERIC:
            text = v[i]
            if text is not None:
                if _NUMBER.match(text):
                    numbers[i] = float(text)
                else:
                    ill = True
        coords: tuple[float | None, ...] | None = None
        if O_LAT in numbers or O_LON in numbers or D_LAT in numbers or D_LON in numbers:
            coords = (
                numbers.get(O_LAT),
                numbers.get(O_LON),
                numbers.get(D_LAT),
                numbers.get(D_LON),
            )
            for c in coords[0::2]:
                ill |= c is not None and not -90 <= c <= 90
            for c in coords[1::2]:
                ill |= c is not None and not -180 <= c <= 180
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
        if scene == "recycling":
            if v[MATERIAL] is None:
                reasons.append("missing_material")
            elif v[MATERIAL] not in MATERIALS:
                reasons.append("unknown_material")
        milli = _milli(amount_raw) if amount_raw is not None else None
        if kind == "trip":
            if amount_raw is None:
                reasons.append("missing_distance")
            if end_t is None:
                reasons.append("missing_end")
        elif kind == "event" and amount_raw is None:
            reasons.append("missing_quantity")
        if (
            (milli is not None and milli < 0)
            or numbers.get(DISTANCE, 0) < 0
            or numbers.get(QUANTITY, 0) < 0
        ):
            reasons.append("negative_amount")
        if kind != "event" and start_ms is not None and end_ms is not None and end_ms < start_ms:
            reasons.append("end_before_start")
        if start_ms is not None and start_ms > self.received_ms + FUTURE_TOLERANCE_MS:
            reasons.append("start_in_future")
        if kind == "trip" and start_ms is not None and end_ms is not None:
            if end_ms <= start_ms:
                reasons.append("non_positive_duration")
            elif milli is not None and milli * 3600 > MAX_SPEED_KMH[scene] * (end_ms - start_ms):  # type: ignore[index]
                reasons.append("speed_implausible")
            if end_ms - start_ms > LONGEST_TRIP_MS:
                reasons.append("trip_too_long")
            if milli is not None and coords is not None and None not in coords:
                line = haversine_m(*coords)  # type: ignore[arg-type]
                if milli < line * self.share - STRAIGHT_LINE_TOLERANCE_M:
                    reasons.append("distance_below_straight_line")
        return reasons, subject, kind, start_ms, end_ms, milli, coords

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
                # grams = floor(amount in thousandths × ER / 1000), with ER = numerator / 10^k
                sign, digits, exponent = unit.reduction_g.as_tuple()
                numerator = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
                scale = 10**-exponent if isinstance(exponent, int) and exponent < 0 else 1
                if isinstance(exponent, int) and exponent > 0:
                    numerator *= 10**exponent
                self.quantities[key] = _Quant(
                    unit.methodology,
                    numerator,
                    1000 * scale,
                    d.max_g if d else None,
                    d.max_count if d else None,
                    m.max_g if m else None,
                    m.max_count if m else None,
                )
        return self.quantities[key]


@functools.cache
def _month_of(day: int) -> int:
    on = date.fromordinal(_EPOCH_ORDINAL + day)
    return on.year * 12 + on.month


# Slices -----------------------------------------------------------------------------------


class _Job(NamedTuple):
    seed: int
    shard: int
    records: int
    fmt: str
    platforms: tuple[str, ...]
    received_ms: int
    parts: str
    defect_order: tuple[str, ...]
    defect_first: int


class _Slice(NamedTuple):
    """What one slice wrote: per file of FILE_ORDER, the part file and its row count, and the
    truth of its rows (rows numbered within the slice's part)."""

    parts: list[tuple[str | None, int]]
    truth: pa.Table
    citizens: int
    over_cap: dict[str, int]


def _file_name(platform: str, part: str, kind: str) -> str:
    return f"{platform}-2026-10{'' if part == 'main' else '-resend'}.{kind}"


def _build_slice(job: _Job) -> _Slice:
    """Simulate one slice of citizens, write its part of every file and referee its rows."""
    # Millions of small objects that live until the end and form no cycles: the cyclic
    # collector would only rescan them, again and again.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _simulate(job)
    finally:
        if collecting:
            gc.enable()


def _simulate(job: _Job) -> _Slice:
    builder = _Builder(job.seed, job.shard, job.platforms)
    replays = round(job.records * REPLAY_SHARE)
    conflicts = round(job.records * CONFLICT_SHARE)
    invalid = round(job.records * INVALID_SHARE)
    target = max(job.records - replays - conflicts - invalid, 0)
    while builder.count < target and len(builder.citizens) <= 10 * job.records + 100:
        builder.citizen_month()
    spare = max(job.records - builder.count - replays - conflicts, 0)
    builder.plant_defects(spare, job.fmt, job.defect_order, job.defect_first)
    builder.plant_replays(max(job.records - builder.count - conflicts, 0), conflicts)

    referee = Referee(load_catalogue(), job.received_ms)
    parts: list[tuple[str | None, int]] = []
    expected: list[Expected] = []
    for platform, part in FILE_ORDER:
        rows = (builder.main if part == "main" else builder.resend)[platform]
        if platform not in builder.enabled or not rows:
            parts.append((None, 0))
            continue
        rows.sort(key=lambda r: r.key)
        kind = _format_of(platform, job.fmt)
        name = _file_name(platform, part, kind)
        path = Path(job.parts) / f"{job.shard}-{name}"
        read = _write_part(path, kind, PLATFORMS[platform].numbers, rows)
        parts.append((str(path), len(rows)))
        for n, (row, (values, record_id)) in enumerate(zip(rows, read, strict=True), start=1):
            expected.append(referee.receive(platform, name, n, values, record_id, row.scenario))
    for e in expected:
        if e.scenario.startswith("invalid:") and e.occurrence == 0:
            wanted = DEFECTS[e.scenario.split(":", 1)[1]][0]
            if wanted not in e.reasons:  # pragma: no cover - a defect of this generator
                raise AssertionError(f"planted {e.scenario} got {e.reason} ({e.file}:{e.row})")
    return _Slice(parts, _truth_table(expected), len(builder.citizens), dict(builder.heavy))


Read = list[tuple[list[str | None] | None, str | None]]
_TIMESTAMP_TYPE = pa.timestamp("ms", tz="UTC")


def _write_part(path: Path, kind: str, numbers: bool, rows: list[Row]) -> Read:
    """Write one slice's rows of a file (CSV without header) and return, per row, the field
    values as the contract reads them (None for a row that is not a record) and the record id
    its receipt will name.

    A typed value reads back as the text it was made from: the same instant, and a double's
    shortest text is the decimal it was parsed from."""
    read: Read = []
    if kind == "parquet":
        columns = list(zip(*(row.values for row in rows), strict=True))
        arrays = []
        for i in range(len(FIELDS)):
            if numbers and i in (START, END):
                arrays.append(pa.array([_parse_ms(t) for t in columns[i]], _TIMESTAMP_TYPE))
            elif numbers and i in NUMERIC:
                arrays.append(pa.array([None if t is None else float(t) for t in columns[i]]))
            else:
                arrays.append(pa.array(columns[i], pa.string()))
        pq.write_table(pa.Table.from_arrays(arrays, names=list(FIELDS)), path)
        return [(row.values, row.values[RECORD_ID]) for row in rows]
    lines = []
    for row in rows:
        if kind == "jsonl":
            if row.raw is not None:
                lines.append(str(row.raw))
                read.append((None, None))
            else:
                lines.append(_json_line(row.values, numbers))
                read.append((row.values, row.values[RECORD_ID]))
        elif row.raw is not None:
            cells = list(row.raw)
            lines.append(",".join(cells))
            read.append((None, cells[RECORD_ID] or None))
        else:
            lines.append(",".join(v or "" for v in row.values))
            read.append((row.values, row.values[RECORD_ID]))
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("\n".join(lines) + "\n")
    return read


def _join_parts(target: Path, kind: str, parts: list[str]) -> None:
    """Concatenate the slices' parts of a file into the file."""
    if kind == "parquet":
        writer: pq.ParquetWriter | None = None
        for part in parts:
            table = pq.read_table(part)
            if writer is None:
                writer = pq.ParquetWriter(target, table.schema)
            writer.write_table(table)
        if writer is not None:
            writer.close()
        return
    with target.open("wb") as out:
        if kind == "csv":
            out.write((",".join(FIELDS) + "\n").encode())
        for part in parts:
            with open(part, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)


def generate(
    out_dir: Path | str,
    records: int = 5000,
    seed: int = 1,
    fmt: str = "mixed",
    platforms: Iterable[str] | None = None,
    received_at: datetime | None = None,
    workers: int | None = None,
) -> Truth:
    """Write `records` rows of activity-record files into `out_dir` and return the truth.

    Args:
        out_dir: folder for the files (created if needed).
        records: number of rows written over all files.
        seed: same seed, same files.
        fmt: `jsonl`, `csv` or `parquet` for every file, or `mixed` (each platform its own:
            JSON Lines for amap, jingtong, meituan, byd; CSV for bjtransit, citic, sgcc;
            Parquet for szmetro, aihuishou).
        platforms: codes of the platforms to simulate (default: all of `PLATFORMS`).
        received_at: when the files will be ingested (for `start_in_future`; default: now).
        workers: processes building slices (default: one per CPU from PARALLEL_FROM records
            on, else none); the output does not depend on it.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    chosen = tuple(PLATFORMS) if platforms is None else tuple(platforms)
    unknown = set(chosen) - set(PLATFORMS)
    if unknown:
        raise ValueError(f"unknown platforms: {', '.join(sorted(unknown))}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = out / ".parts"
    parts.mkdir(exist_ok=True)
    received_ms = ((received_at or datetime.now(UTC)) - _EPOCH) // _MS
    order = list(DEFECTS)
    random.Random(seed).shuffle(order)
    jobs, first = [], 0
    for shard in range(SHARDS):
        share = records // SHARDS + (1 if shard < records % SHARDS else 0)
        jobs.append(
            _Job(seed, shard, share, fmt, chosen, received_ms, str(parts), tuple(order), first)
        )
        first += round(share * INVALID_SHARE)
    if workers is None:
        workers = min(os.cpu_count() or 1, SHARDS) if records >= PARALLEL_FROM else 1
    if workers > 1:
        with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
            slices = list(pool.map(_build_slice, jobs))
    else:
        slices = [_build_slice(job) for job in jobs]

    files: list[tuple[str, Path]] = []
    tables: list[pa.Table] = []
    for i, (platform, part) in enumerate(FILE_ORDER):
        written = [(s.parts[i][0], s.parts[i][1], s.truth) for s in slices if s.parts[i][0]]
        if not written:
            continue
        kind = _format_of(platform, fmt)
        target = out / _file_name(platform, part, kind)
        _join_parts(target, kind, [p for p, _, _ in written if p])
        files.append((platform, target))
        offset = 0
        for _, count, truth in written:
            mine = truth.filter(pc.equal(truth.column("file"), target.name))
            rows = pc.add(mine.column("row"), offset)
            tables.append(mine.set_column(mine.schema.get_field_index("row"), "row", rows))
            offset += count
    shutil.rmtree(parts)
    table = pa.concat_tables(tables) if tables else TRUTH_SCHEMA.empty_table()
    over_cap: Counter[str] = Counter()
    for s in slices:
        over_cap.update(s.over_cap)
    return Truth(files, table, seed, records, fmt, sum(s.citizens for s in slices), dict(over_cap))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: generate files and their truth into a folder."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.generate",
        description="Write activity-record files of several member platforms and their truth.",
    )
    parser.add_argument("--records", type=int, default=100_000, help="rows over all files")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="jsonl")
    parser.add_argument("--platforms", help="comma-separated platform codes (default: all)")
    parser.add_argument("--workers", type=int, help="processes (default: one per CPU)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    platforms = args.platforms.split(",") if args.platforms else None
    truth = generate(args.out, args.records, args.seed, args.fmt, platforms, workers=args.workers)
    written = time.perf_counter()
    truth.write(args.out)
    summary = truth.summary()
    done = time.perf_counter()
    print(
        f"{summary['rows']} rows, {summary['citizens']} citizens, {len(truth.files)} files "
        f"in {args.out}: {written - started:.1f} s, truth files {done - written:.1f} s"
    )
    print("ingest in this order:")
    for platform, path in truth.files:
        print(f"  puhui ingest --platform {platform} {path}")
    print(json.dumps({k: summary[k] for k in ("by_status", "by_reason", "credited_g")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
