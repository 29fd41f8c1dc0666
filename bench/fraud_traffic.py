"""Four weeks of member-platform traffic with planted fraud, and the truth of every written record.

This module owns the data of the fraud benchmark: what six member platforms report about the
citizens of four cities between Monday 2 and Sunday 29 November 2026 (China time), the fraud
planted among it, and, for each written record, whether it is clean or which fraud it is. The
benchmark ingests the files in receive order and measures, per kind of fraud, the precision and
recall of the records the clearing holds or rejects, and the share of clean records it holds.

Platforms and what they see:

- `szmetro` (Shenzhen metro operator): every metro ride in Shenzhen, gate tap-in to tap-out with
  milliseconds, the fare distance between the two stations (0.1 km) and a card-tap `ref`.
- `bjtransit` (Beijing transit operator): every bus and metro ride in Beijing, to the second,
  fare distance and card-tap `ref`.
- `aihuishou` (recycler): recycling receipts with a receipt number, kg by material.
- `jingtong` (Beijing city app): online government services (paperless), with a device.
- `meituan` (take-away): orders without disposable cutlery, with an order number and a device.
- `amap` (map app): walks, bike rides, bus and metro rides it navigated, with GPS-measured
  distances (metre precision), origin and destination, and the device of the phone.

A device identifier is the platform's own hash of the phone or tablet: the same phone has a
different identifier at the map app, the take-away app and the city app.

Clean traffic: citizens (mainland mobile numbers) living in Beijing, Shenzhen, Shanghai and
Chengdu commute by metro or bus on working days at habitual times (a rush-hour profile per
minute: most leave between 7:15 and 8:45, shift workers earlier or later), ride the metro at
weekends, walk and cycle, order take-away, use online services and hand in recyclables now and
then. A commuter's daily ride joins the same two stations, so the operator reports the same fare
distance every day, with a tap-to-tap duration that varies by seconds to minutes. The map app
reports about half of the metro rides it could see, with 0-90 s of clock skew against the
operator and no `ref`: in Beijing and Shenzhen the operator's record corroborates it; in
Shanghai and Chengdu no operator reports and the map app's ride stands alone. The hard but
legitimate cases are all there:

- households of two or three citizens sharing one tablet or phone (orders, online services, and
  all records of a member with no phone of their own): a device used by up to three citizens;
- citizens who change phone once during the month (two devices per platform, three for a
  household member with a shared tablet);
- business travellers between Beijing and Shanghai, Shenzhen or Chengdu who walk in one city in
  the morning and in the other after a flight or a high-speed train the same day (door-to-door
  150-450 km/h), and ride the metro of the city they visit;
- rush hours at the metro gates, and lunch and dinner peaks of take-away orders;
- heavy days: a citizen recycling 25-40 kg in a few receipts after moving house, a 36-42 km
  walk on a weekend.

Planted fraud, each written record labelled with its kind (`KINDS`):

- `uncorroborated`: metro rides in Shenzhen or Beijing that the map app reports for real
  citizens and the operator never saw (no gate tap), at times the citizen was doing nothing else.
- `device_shared`: phone farms, each device reporting behaviours of 20-50 mobile numbers within
  a week (mostly virtual-operator SIM cards), two to five records per number.
- `device_hopping`: accounts whose records within one week come from 6-15 devices, two to six
  records per device.
- `velocity`: an account used in another city at the same time as its owner: walks or bike
  rides more than 1000 km away, starting 2-25 minutes after the end of the citizen's genuine
  located trips. The phone that fakes them syncs late at night, so the map app's file holds them
  after all the citizen's genuine trips of that day: they are received after the genuine ones.
- `volume_outlier`: a recycler's receipts of 2-6 t of paper for one person in a day, across a
  few receipts; and accounts of a script that posts a short walk every few minutes from six in
  the morning, 130-200 walks in one day.
- `burst`: a platform injecting 100-300 records of one scene and region starting in the same
  minute in the small hours, for made-up numbers or for real citizens.
- `repeated_trip`: a genuine walk or bike ride (clean, the original) replayed 5-15 times later
  the same day or in the six days after, with the same coordinates, distance to the metre and
  duration to the second.

Every record is valid under activity-record v1 (the fraudsters pass the simple checks): times
with offsets, trips ending after they start within their mode's speed bound, distances not
below the straight line between origin and destination, starts in November. Record ids are
unique per platform and each behaviour has its own `ref`.

Files: `<platform>-2026-11-w<k>.jsonl` for k = 1..4 (by behaviour start, weeks from Monday),
each in the order the platform reports (trips when they end, the map app when the phone syncs,
events when they happen); `order.json`, the files in receive order (week by week: amap,
jingtong, meituan, then szmetro, bjtransit and aihuishou); `truth.parquet`, one row per written
record in receive order (`platform`, `record_id`, `kind`, `file`).

Library: `generate_fraud(out_dir, citizens=2000, seed=1) -> FraudTruth`.
Command: `python -m bench.fraud_traffic --out DIR --citizens N --seed S`.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import itertools
import json
import math
import random
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from bench.generate import (
    CITIES,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    PLATFORMS,
    _json_line,
    _move,
    haversine_m,
    km,
    spell,
    stamp,
)
from puhui.domain.rules import (  # type: ignore[import-untyped,unused-ignore]
    LONGEST_TRIP_MS,
    MAX_SPEED_KMH,
    STRAIGHT_LINE_TOLERANCE_M,
    STRAIGHT_LINE_TOLERANCE_SHARE,
)

# 2026-11-02T00:00:00+08:00, a Monday: the first instant of the four simulated weeks.
NOVEMBER_MS = int(datetime(2026, 11, 1, 16, tzinfo=UTC).timestamp()) * 1000
DAYS = 28
WEEKS = 4
SECOND_MS = 1000

# Within a week, the platforms' files in the order they reach the clearing: the apps' first
# (they sync as they go), the operators' and the recycler's at the end of the week, so that the
# map app's metro rides in Beijing and Shenzhen wait for the operators' word.
RECEIVE_ORDER: tuple[str, ...] = (
    "amap",
    "jingtong",
    "meituan",
    "szmetro",
    "bjtransit",
    "aihuishou",
)
KINDS: tuple[str, ...] = (
    "clean",
    "uncorroborated",
    "device_shared",
    "device_hopping",
    "velocity",
    "volume_outlier",
    "burst",
    "repeated_trip",
)
TRUTH_SCHEMA = pa.schema(
    [
        ("platform", pa.string()),
        ("record_id", pa.string()),
        ("kind", pa.string()),
        ("file", pa.string()),
    ]
)

_LINE_SHARE = 1 - float(STRAIGHT_LINE_TOLERANCE_SHARE)
_MATERIALS = ("paper", "plastic", "metal", "glass", "textile")
_MATERIAL_CUM = list(itertools.accumulate((45, 25, 8, 10, 12)))
_KG = {"paper": (2.0, 15.0), "plastic": (1.0, 6.0), "metal": (0.5, 5.0), "glass": (1.0, 8.0),
       "textile": (1.0, 10.0)}  # fmt: skip
_PREFIXES = (
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "147", "150", "151",
    "152", "153", "155", "156", "157", "158", "159", "166", "173", "175", "176", "177", "178",
    "180", "181", "182", "183", "184", "185", "186", "187", "188", "189", "191", "193", "195",
    "198", "199",
)  # fmt: skip
# Virtual-operator ranges, the usual SIM cards of phone farms.
_MVNO_PREFIXES = ("162", "165", "167", "170", "171")


@dataclass(frozen=True, slots=True)
class Town:
    """A city of the simulation.

    Attributes:
        code: GB/T 2260 code the platforms write for it.
        lat, lon: centre.
        weight: share of citizens living there.
        radius_km: how far from the centre citizens live, work and go.
        operator: the transit operator reporting rides there, if any, and its scenes.
    """

    code: str
    lat: float
    lon: float
    weight: float
    radius_km: float
    operator: str | None
    operator_scenes: tuple[str, ...]


_CITY = {c.code: c for c in CITIES}
TOWNS: tuple[Town, ...] = tuple(
    Town(code, _CITY[code].lat, _CITY[code].lon, weight, radius, _CITY[code].operator,
         _CITY[code].operator_scenes)
    for code, weight, radius in (
        ("110000", 0.32, 14.0), ("440300", 0.28, 13.0), ("310000", 0.22, 14.0),
        ("510100", 0.18, 11.0),
    )
)  # fmt: skip
_TOWN = {t.code: t for t in TOWNS}
_TOWN_CUM = list(itertools.accumulate(t.weight for t in TOWNS))
BEIJING = _TOWN["110000"]
# Region the Beijing city app writes.
JINGTONG_REGION = "110100"

_DEVICES: dict[tuple[str, int], str] = {}


def device_id(platform: str, hardware: int) -> str:
    """The identifier a platform writes for a phone or tablet: its own hash of the hardware."""
    key = (platform, hardware)
    found = _DEVICES.get(key)
    if found is None:
        h = hashlib.blake2b(f"{platform}/{hardware}".encode(), digest_size=16).hexdigest()
        if platform == "meituan":
            found = "mt" + h[:22]
        elif platform == "jingtong":
            found = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        else:
            found = h
        _DEVICES[key] = found
    return found


class Located(NamedTuple):
    """A clean map-app trip of a citizen, as written (for the fraud that copies or shadows it)."""

    day: int
    start: int
    end: int
    scene: str
    town: str
    coords: tuple[float, float, float, float]
    distance: str
    device: str


@dataclass(slots=True)
class Travel:
    """A business trip: out on `out_day`, back on `back_day`, staying in `town`."""

    out_day: int
    back_day: int
    town: Town
    hotel: tuple[float, float]


@dataclass(slots=True)
class Person:
    """A citizen (or a made-up number) and what the simulation needs to know about them."""

    digits: str
    town: Town
    home: tuple[float, float] = (0.0, 0.0)
    work: tuple[float, float] = (0.0, 0.0)
    commute: str | None = None
    uses_map: bool = False
    phones: list[tuple[int, int]] = field(default_factory=list)  # (from ms, hardware)
    shared: int | None = None
    tablet_share: float = 0.0
    own_phone: bool = True
    order_rate: float = 0.0
    gov_rate: float = 0.0
    recycle_rate: float = 0.0
    depart_s: int = 0
    back_s: int = 0
    stations: tuple[tuple[float, float], tuple[float, float]] | None = None
    fare_km: float = 0.0
    ride_s: int = 0
    travel: Travel | None = None
    mover: bool = False
    hiker: bool = False
    busy: dict[int, list[tuple[int, int]]] = field(default_factory=dict)
    located: list[Located] = field(default_factory=list)
    acts: set[tuple[str, int]] = field(default_factory=set)  # (scene, day) of clean records
    spelled: dict[str, str] = field(default_factory=dict)

    def hardware(self, at_ms: int) -> int:
        """The phone the citizen carries at a moment (the shared one when they have none)."""
        if not self.own_phone and self.shared is not None:
            return self.shared
        found = self.phones[0][1]
        for since, hw in self.phones:
            if since <= at_ms:
                found = hw
        return found

    def written(self, platform: str) -> str:
        """The mobile number as the platform writes it."""
        found = self.spelled.get(platform)
        if found is None:
            found = self.spelled[platform] = spell(self.digits, PLATFORMS[platform].phone)
        return found


class Rec(NamedTuple):
    """One written record: its file's platform and week, its position key, id, kind and line."""

    platform: str
    week: int
    key: int
    record_id: str
    kind: str
    line: str


@dataclass
class FraudTruth:
    """What `generate_fraud` wrote.

    Attributes:
        files: the file names (in the output folder) in receive order, as in `order.json`.
        truth: one row per written record in receive order: `platform`, `record_id`, `kind`
            (`clean` or the planted kind) and `file`.
        hard: how many of each hard but legitimate case the clean traffic holds.
    """

    files: list[str]
    truth: pa.Table
    hard: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        """Records by kind (every kind of `KINDS`, zero when absent)."""
        found = Counter(self.truth.column("kind").to_pylist())
        return {k: found.get(k, 0) for k in KINDS}


def _check_trip(
    scene: str, start: int, end: int, distance: str, coords: Sequence[float] | None
) -> None:
    """Refuse to write a trip that activity-record v1 would reject (a defect of this module)."""
    milli = round(float(distance) * 1000)
    duration = end - start
    if not 0 < duration <= LONGEST_TRIP_MS:
        raise AssertionError(f"{scene} trip of {duration} ms")
    if milli * 3600 > MAX_SPEED_KMH[scene] * duration:
        raise AssertionError(f"{scene} trip of {distance} km in {duration} ms is too fast")
    if coords is not None:
        line = haversine_m(*coords)
        if milli < line * _LINE_SHARE - STRAIGHT_LINE_TOLERANCE_M:
            raise AssertionError(f"{scene} trip of {distance} km below its line of {line:.0f} m")
    day = (start - NOVEMBER_MS) // DAY_MS
    if not 0 <= day < DAYS:
        raise AssertionError(f"trip starts outside the four weeks (day {day})")


class _Traffic:
    """Simulates the citizens, the platforms' records about them and the planted fraud."""

    def __init__(self, citizens: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.random = self.rng.random
        self.size = citizens
        self.people: list[Person] = []
        self.numbers: set[str] = set()
        self.records: list[Rec] = []
        self.counters: Counter[str] = Counter()
        self.hard: Counter[str] = Counter()
        self.taken: set[str] = set()  # citizens already chosen as victims of some fraud

    # random helpers ----------------------------------------------------------------------

    def _int(self, low: int, high: int) -> int:
        """A random integer in [low, high]."""
        return self.rng.randint(low, high)

    def _uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def _poisson(self, lam: float) -> int:
        limit, k, p = math.exp(-lam), 0, self.random()
        while p > limit:
            k += 1
            p *= self.random()
        return k

    def _clock(self, mean_s: float, sd_s: float, low_s: int, high_s: int) -> int:
        """A second of the day drawn around a mean, kept within [low_s, high_s]."""
        return int(min(max(self.rng.gauss(mean_s, sd_s), low_s), high_s))

    def _spot(self, town: Town, radius: float | None = None) -> tuple[float, float]:
        r = (town.radius_km if radius is None else radius) * math.sqrt(self.random())
        return _move(town.lat, town.lon, r, self._uniform(0, 2 * math.pi))

    def _near(self, point: tuple[float, float], low: float, high: float) -> tuple[float, float]:
        return _move(point[0], point[1], self._uniform(low, high), self._uniform(0, 2 * math.pi))

    def _number(self, mvno: bool = False) -> str:
        prefixes = _MVNO_PREFIXES if mvno else _PREFIXES
        while True:
            digits = prefixes[self._int(0, len(prefixes) - 1)] + f"{self._int(0, 10**8 - 1):08d}"
            if digits not in self.numbers:
                self.numbers.add(digits)
                return digits

    def _hw(self) -> int:
        return self.rng.getrandbits(63)

    # bookkeeping -------------------------------------------------------------------------

    def _id(self, platform: str) -> str:
        self.counters[platform] += 1
        return f"{PLATFORMS[platform].prefix}2611{self.counters[platform]:08d}"

    def _ref(self, platform: str) -> str:
        self.counters["ref:" + platform] += 1
        n = self.counters["ref:" + platform]
        if platform == "szmetro":
            return f"SZT2611{n:08d}"
        if platform == "bjtransit":
            return f"TAPN-{(n * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFF:012X}"
        if platform == "aihuishou":
            return f"RC2611{n:09d}"
        if platform == "meituan":
            return f"2611{n:014d}"
        return f"JTGOV2611{n:07d}"

    def _free(self, p: Person, start: int, end: int, margin: int = 2 * MINUTE_MS) -> bool:
        """Whether the citizen does nothing else between start and end (with a margin)."""
        first = (start - NOVEMBER_MS) // DAY_MS
        for d in range(first - 1, (end - NOVEMBER_MS) // DAY_MS + 1):
            for a, b in p.busy.get(d, ()):
                if a < end + margin and start < b + margin:
                    return False
        return True

    def _reserve(self, p: Person, start: int, end: int) -> None:
        p.busy.setdefault((start - NOVEMBER_MS) // DAY_MS, []).append((start, end))

    def _write(
        self,
        p: Person,
        platform: str,
        values: list[str | None],
        start: int,
        key: int,
        kind: str,
    ) -> None:
        if kind == "clean":
            p.acts.add((values[3] or "", (start - NOVEMBER_MS) // DAY_MS))
        week = (start - NOVEMBER_MS) // (7 * DAY_MS) + 1
        if not 1 <= week <= WEEKS:
            raise AssertionError(f"a behaviour outside the four weeks: {values}")
        line = _json_line(values, PLATFORMS[platform].numbers)
        self.records.append(Rec(platform, week, key, values[1] or "", kind, line))

    def trip(
        self,
        platform: str,
        p: Person,
        scene: str,
        region: str,
        span: tuple[int, int],
        distance: str,
        kind: str = "clean",
        ref: str | None = None,
        coords: tuple[float, float, float, float] | None = None,
        device: str | None = None,
        key: int | None = None,
    ) -> tuple[float, float, float, float] | None:
        """Write one trip; returns the coordinates as written."""
        spec = PLATFORMS[platform]
        written = None if coords is None else tuple(round(c, 6) for c in coords)
        _check_trip(scene, span[0], span[1], distance, written)
        values: list[str | None] = [
            platform, self._id(platform), p.written(platform), scene, region,
            stamp(span[0], spec.utc, spec.millis), stamp(span[1], spec.utc, spec.millis),
            distance, None, None, ref, None, None, None, None, device,
        ]  # fmt: skip
        if written is not None:
            values[11:15] = [f"{c:.6f}" for c in written]
        self._write(p, platform, values, span[0], span[1] if key is None else key, kind)
        return None if written is None else (written[0], written[1], written[2], written[3])

    def event(
        self,
        platform: str,
        p: Person,
        scene: str,
        region: str,
        at: int,
        quantity: str,
        kind: str = "clean",
        ref: str | None = None,
        material: str | None = None,
        device: str | None = None,
    ) -> None:
        """Write one event."""
        spec = PLATFORMS[platform]
        values: list[str | None] = [
            platform, self._id(platform), p.written(platform), scene, region,
            stamp(at, spec.utc, spec.millis), None, None, quantity, material, ref,
            None, None, None, None, device,
        ]  # fmt: skip
        self._write(p, platform, values, at, at, kind)

    # citizens ----------------------------------------------------------------------------

    def _citizen(self) -> Person:
        town = TOWNS[bisect.bisect_right(_TOWN_CUM, self.random() * _TOWN_CUM[-1])]
        p = Person(self._number(), town)
        p.home = self._spot(town)
        p.work = self._spot(town, town.radius_km * 0.7)
        p.uses_map = self.random() < 0.65
        p.phones = [(0, self._hw())]
        if self.random() < 0.05:
            self.hard["phone_changes"] += 1
            p.phones.append((NOVEMBER_MS + self._int(2, DAYS - 3) * DAY_MS, self._hw()))
        p.order_rate = 0.0 if self.random() < 0.3 else self._uniform(0.1, 0.8)
        if town is BEIJING and self.random() < 0.6:
            p.gov_rate = self._uniform(0.03, 0.2)
        if self.random() < 0.4:
            p.recycle_rate = self._uniform(0.02, 0.08)
        r = self.random()
        p.commute = "metro" if r < 0.55 else ("bus" if r < 0.7 else None)
        if self.random() < 0.75:
            p.depart_s = self._clock(8 * 3600, 30 * 60, 6 * 3600 + 1800, 9 * 3600 + 2700)
        else:
            p.depart_s = self._int(6 * 3600, 10 * 3600 + 1800)
        if self.random() < 0.7:
            p.back_s = self._clock(18 * 3600 + 1200, 40 * 60, 16 * 3600 + 1800, 21 * 3600)
        else:
            p.back_s = self._int(17 * 3600, 21 * 3600 + 1800)
        self.people.append(p)
        return p

    def _stations(self, p: Person) -> None:
        """The two stations (or stops) of a commuter's daily ride, its fare distance and
        usual duration; a commuter living close to work walks or cycles instead."""
        if p.commute is not None:
            a = self._near(p.home, 0.4, 1.1)
            b = self._near(p.work, 0.3, 0.9)
            line_km = haversine_m(*a, *b) / 1000
            if line_km < 2.5:
                p.commute = None
            else:
                p.stations = (a, b)
                detour = self._uniform(1.18, 1.4)
                p.fare_km = round(line_km * detour, 1)
                speed = self._uniform(30, 38) if p.commute == "metro" else self._uniform(13, 20)
                p.ride_s = int(p.fare_km / speed * 3600) + self._int(60, 300)

    def _households(self) -> None:
        """Group some citizens of a town into households of two or three sharing a device."""
        by_town: dict[str, list[Person]] = {}
        for p in self.people:
            by_town.setdefault(p.town.code, []).append(p)
        for members in by_town.values():
            i = 0
            while i < len(members) - 3:
                if self.random() < 0.05:
                    size = 2 if self.random() < 0.6 else 3
                    tablet = self._hw()
                    self.hard["households"] += 1
                    for j, m in enumerate(members[i : i + size]):
                        m.shared = tablet
                        m.tablet_share = self._uniform(0.3, 0.8)
                        m.home = members[i].home
                        if m.order_rate == 0:
                            m.order_rate = self._uniform(0.1, 0.4)
                        if j == 2 and self.random() < 0.6:
                            m.own_phone = False  # an elder using the family phone
                            m.commute = None
                            self.hard["citizens_without_own_phone"] += 1
                    self.hard["household_members"] += size
                    i += size
                else:
                    i += 1

    def _travels(self) -> None:
        """Some citizens make a business trip between Beijing and another city; some move house
        or walk a very long way once."""
        eligible = [p for p in self.people if p.uses_map and p.own_phone]
        for p in self.rng.sample(eligible, min(len(eligible), max(2, round(self.size / 45)))):
            dest = TOWNS[self._int(1, len(TOWNS) - 1)] if p.town is BEIJING else BEIJING
            out = self._int(0, DAYS - 6)
            p.travel = Travel(out, out + self._int(1, 4), dest, self._spot(dest, 8.0))
            self.hard["business_trips"] += 1
        for p in self.rng.sample(self.people, max(1, round(self.size / 80))):
            p.mover = True
        walkers = [p for p in eligible if p.travel is None]
        for p in self.rng.sample(walkers, min(len(walkers), max(1, round(self.size / 120)))):
            p.hiker = True

    # behaviours --------------------------------------------------------------------------

    def _transit(
        self,
        p: Person,
        town: Town,
        scene: str,
        depart: int,
        doors: tuple[tuple[float, float], tuple[float, float]],
        stations: tuple[tuple[float, float], tuple[float, float]],
        fare_km: float,
        ride_s: int,
        map_share: float = 0.5,
    ) -> bool:
        """A bus or metro ride with its walks to and from the stations: the operator reports the
        ride where it operates; the map app reports it (and most walks) when it navigated."""
        (door_a, door_b), (st_a, st_b) = doors, stations
        w1_km = haversine_m(*door_a, *st_a) / 1000 * self._uniform(1.15, 1.45) + 0.05
        w2_km = haversine_m(*st_b, *door_b) / 1000 * self._uniform(1.15, 1.45) + 0.05
        w1_s = int(w1_km / self._uniform(4.2, 5.6) * 3600) + 60
        w2_s = int(w2_km / self._uniform(4.2, 5.6) * 3600) + 60
        # Tap to tap: the usual time between the stations, plus waiting on each platform (up
        # to a headway, shorter at rush hours), plus walking pace and traffic.
        clock = (depart - NOVEMBER_MS) % DAY_MS // HOUR_MS
        rush = 7 <= clock < 10 or 17 <= clock < 20
        headway = (150 if rush else 300) if scene == "metro" else 480
        ride = ride_s + sum(self._int(0, headway) for _ in range(1 + int(fare_km // 8)))
        ride += int(self.rng.gauss(0, 40 if scene == "metro" else 180))
        if self.random() < 0.04:
            ride += self._int(120, 600)  # a delay
        ride = max(ride, int(fare_km / 60 * 3600) + 180, 360)
        t0 = depart
        t_in = t0 + (w1_s + self._int(30, 150)) * SECOND_MS
        t_out = t_in + ride * SECOND_MS
        t2 = t_out + self._int(20, 100) * SECOND_MS
        t3 = t2 + w2_s * SECOND_MS
        if (t3 - NOVEMBER_MS) // DAY_MS != (t0 - NOVEMBER_MS) // DAY_MS:
            return False
        if not self._free(p, t0, t3):
            return False
        self._reserve(p, t0, t3)
        if scene in town.operator_scenes and town.operator is not None:
            op = town.operator
            s, e = t_in, t_out
            if op == "szmetro":
                s, e = s + self._int(0, 999), e + self._int(0, 999)
            self.trip(op, p, scene, town.code, (s, e), km(fare_km, 1), ref=self._ref(op))
        if p.uses_map and self.random() < map_share:
            device = device_id("amap", p.hardware(t0))
            if self.random() < 0.7:
                self._amap(p, town, "walk", (t0, t0 + w1_s * SECOND_MS), w1_km, door_a, st_a)
            skew = (self._int(-90, 90) * SECOND_MS, self._int(-90, 90) * SECOND_MS)
            a = _move(st_a[0], st_a[1], self._uniform(0, 0.04), self._uniform(0, 2 * math.pi))
            b = _move(st_b[0], st_b[1], self._uniform(0, 0.04), self._uniform(0, 2 * math.pi))
            measured = fare_km * self._uniform(0.97, 1.04)
            span = (t_in + skew[0], t_out + skew[1])
            self.trip(
                "amap",
                p,
                scene,
                town.code,
                span,
                km(measured),
                coords=(*a, *b),
                device=device,
                key=span[1] + self._int(0, 600) * SECOND_MS,
            )
            if scene == "metro" and town.operator is not None:
                self.hard["map_metro_rides_corroborated"] += 1
            elif scene == "metro":
                self.hard["map_metro_rides_without_policy"] += 1
            if self.random() < 0.7:
                self._amap(p, town, "walk", (t2, t3), w2_km, st_b, door_b)
        return True

    def _amap(
        self,
        p: Person,
        town: Town,
        scene: str,
        span: tuple[int, int],
        measured_km: float,
        origin: tuple[float, float],
        dest: tuple[float, float] | None = None,
    ) -> None:
        """A walk or bike ride navigated by the map app (the caller reserved its time)."""
        if dest is None:
            dest = _move(*origin, measured_km / self._uniform(1.12, 1.6), self._uniform(0, 7))
        device = device_id("amap", p.hardware(span[0]))
        coords = self.trip(
            "amap",
            p,
            scene,
            town.code,
            span,
            km(measured_km),
            coords=(*origin, *dest),
            device=device,
            key=span[1] + self._int(5, 900) * SECOND_MS,
        )
        assert coords is not None
        day = (span[0] - NOVEMBER_MS) // DAY_MS
        p.located.append(
            Located(day, span[0], span[1], scene, town.code, coords, km(measured_km), device)
        )

    def _outdoor(
        self,
        p: Person,
        town: Town,
        day: int,
        scene: str,
        window: tuple[int, int],
        origin: tuple[float, float],
        distance: float | None = None,
    ) -> bool:
        """A walk or bike ride somewhere in a window of the day (seconds), if time is free."""
        if distance is None:
            if scene == "walk":
                distance = min(max(self.rng.lognormvariate(math.log(1.8), 0.6), 0.3), 12.0)
            else:
                distance = self._uniform(1.0, 9.0)
        speed = self._uniform(3.6, 5.8) if scene == "walk" else self._uniform(9.0, 18.0)
        duration = int(distance / speed * 3600) * SECOND_MS
        base = NOVEMBER_MS + day * DAY_MS
        for _ in range(6):
            start = base + self._int(*window) * SECOND_MS
            if self._free(p, start, start + duration):
                self._reserve(p, start, start + duration)
                self._amap(p, town, scene, (start, start + duration), distance, origin)
                return True
        return False

    def _outing(
        self, p: Person, town: Town, day: int, window: tuple[int, int], home: tuple[float, float]
    ) -> None:
        """A metro (or bus) ride somewhere in the city and back a few hours later."""
        scene = "metro" if self.random() < 0.8 else "bus"
        there = self._spot(town)
        a, b = self._near(home, 0.3, 1.0), self._near(there, 0.3, 0.9)
        line_km = haversine_m(*a, *b) / 1000
        if line_km < 2.5:
            return
        fare = round(line_km * self._uniform(1.18, 1.4), 1)
        speed = self._uniform(30, 38) if scene == "metro" else self._uniform(13, 20)
        ride = int(fare / speed * 3600) + self._int(60, 300)
        base = NOVEMBER_MS + day * DAY_MS
        go = base + self._int(*window) * SECOND_MS
        if self._transit(p, town, scene, go, (home, there), (a, b), fare, ride):
            back = go + self._int(2 * 3600, 5 * 3600) * SECOND_MS
            if (back - base) < 22 * HOUR_MS:
                self._transit(p, town, scene, back, (there, home), (b, a), fare, ride)

    def _commute(self, p: Person, day: int) -> None:
        assert p.stations is not None
        assert p.commute is not None
        base = NOVEMBER_MS + day * DAY_MS
        a, b = p.stations
        go = base + (p.depart_s + int(self.rng.gauss(0, 300))) * SECOND_MS
        self._transit(p, p.town, p.commute, go, (p.home, p.work), (a, b), p.fare_km, p.ride_s)
        back = base + (p.back_s + int(self.rng.gauss(0, 900))) * SECOND_MS
        self._transit(p, p.town, p.commute, back, (p.work, p.home), (b, a), p.fare_km, p.ride_s)

    def _travel_day(
        self,
        p: Person,
        day: int,
        origin: Town,
        dest: Town,
        here: tuple[float, float],
        there: tuple[float, float],
    ) -> None:
        """A walk before leaving, a flight or train, a walk on arrival (door to door 150-450
        km/h), sometimes an evening out in the city of arrival."""
        base = NOVEMBER_MS + day * DAY_MS
        d1 = self._uniform(0.6, 2.5)
        s1 = base + self._int(6 * 3600 + 1800, 12 * 3600) * SECOND_MS
        e1 = s1 + int(d1 / self._uniform(4.0, 5.5) * 3600) * SECOND_MS
        if not self._free(p, s1, e1):
            return
        self._reserve(p, s1, e1)
        self._amap(p, origin, "walk", (s1, e1), d1, here)
        start_there = self._near(there, 0.2, 2.0)
        gone_km = haversine_m(*p.located[-1].coords[2:], *start_there) / 1000
        s2 = e1 + int(gone_km / self._uniform(150, 450) * 3600) * SECOND_MS
        d2 = self._uniform(0.5, 2.5)
        e2 = s2 + int(d2 / self._uniform(4.0, 5.5) * 3600) * SECOND_MS
        if e2 - base > 23 * HOUR_MS or not self._free(p, s2, e2):
            return
        self._reserve(p, s2, e2)
        self._amap(p, dest, "walk", (s2, e2), d2, start_there)
        self.hard["travel_days"] += 1
        if self.random() < 0.5:
            late = (e2 - base) // SECOND_MS + 3600
            if late < 20 * 3600:
                self._outing(p, dest, day, (late, late + 1800), there)

    def _leisure(
        self,
        p: Person,
        town: Town,
        day: int,
        home: tuple[float, float],
        workday: bool,
        at_work: bool,
    ) -> None:
        if p.uses_map:
            walks = self._poisson(0.35 if workday else 0.6)
            for _ in range(walks):
                window = (19 * 3600, 21 * 3600 + 1800) if workday else (8 * 3600, 20 * 3600)
                if workday and at_work and p.commute and self.random() < 0.2:
                    self._outdoor(p, town, day, "walk", (12 * 3600, 13 * 3600), p.work)
                else:
                    self._outdoor(p, town, day, "walk", window, self._near(home, 0, 0.5))
            for _ in range(self._poisson(0.12 if workday else 0.22)):
                window = (7 * 3600, 21 * 3600)
                self._outdoor(p, town, day, "bike", window, self._near(home, 0, 1.0))
        if self.random() < (0.07 if workday else 0.3):
            window = (19 * 3600, 20 * 3600) if workday else (9 * 3600, 16 * 3600)
            self._outing(p, town, day, window, home)

    def _events(self, p: Person, town: Town, day: int) -> None:
        base = NOVEMBER_MS + day * DAY_MS
        for _ in range(self._poisson(p.order_rate)):
            r = self.random()
            if r < 0.55:
                at = self._clock(12 * 3600, 25 * 60, 10 * 3600 + 1800, 14 * 3600)
            elif r < 0.9:
                at = self._clock(18 * 3600 + 2400, 40 * 60, 16 * 3600 + 1800, 21 * 3600)
            else:
                at = self._int(21 * 3600, 24 * 3600 - 1)
            moment = base + at * SECOND_MS
            hw = (
                p.shared
                if p.shared is not None and self.random() < p.tablet_share
                else p.hardware(moment)
            )
            self.event(
                "meituan",
                p,
                "no_cutlery",
                town.code,
                moment,
                "1",
                ref=self._ref("meituan"),
                device=device_id("meituan", hw),
            )
        for _ in range(self._poisson(p.gov_rate)):
            moment = base + self._int(8 * 3600 + 1800, 22 * 3600 + 1800) * SECOND_MS
            hw = (
                p.shared
                if p.shared is not None and self.random() < p.tablet_share
                else p.hardware(moment)
            )
            self.event(
                "jingtong",
                p,
                "paperless",
                JINGTONG_REGION,
                moment,
                "1",
                ref=self._ref("jingtong"),
                device=device_id("jingtong", hw),
            )
        if town is p.town:
            for _ in range(self._poisson(p.recycle_rate)):
                self._receipt(p, day)

    def _receipt(
        self,
        p: Person,
        day: int,
        kg: float | None = None,
        material: str | None = None,
        kind: str = "clean",
    ) -> None:
        material = (
            material
            or _MATERIALS[bisect.bisect_right(_MATERIAL_CUM, self.random() * _MATERIAL_CUM[-1])]
        )
        if kg is None:
            kg = self._uniform(*_KG[material])
        at = NOVEMBER_MS + day * DAY_MS + self._int(9 * 3600, 19 * 3600) * SECOND_MS
        self.event(
            "aihuishou",
            p,
            "recycling",
            p.town.code,
            at,
            km(kg, 2),
            kind=kind,
            ref=self._ref("aihuishou"),
            material=material,
        )

    def _heavy_days(self, p: Person) -> None:
        """Moving house (25-40 kg of recyclables in a day) or a long weekend walk."""
        if p.mover:
            day, total = self._int(0, DAYS - 1), self._uniform(25, 40)
            parts = self._int(2, 4)
            for i in range(parts):
                self._receipt(p, day, total / parts, "paper" if i < parts - 1 else "textile")
            self.hard["moving_house"] += 1
        if p.hiker:
            day = 7 * self._int(0, WEEKS - 1) + self._int(5, 6)
            distance = self._uniform(36, 42)
            if self._outdoor(
                p,
                p.town,
                day,
                "walk",
                (6 * 3600, 7 * 3600 + 1800),
                self._near(p.home, 0, 2),
                distance,
            ):
                self.hard["long_walks"] += 1

    def _month(self, p: Person) -> None:
        """The citizen's four weeks."""
        self._heavy_days(p)
        trip = p.travel
        for day in range(DAYS):
            workday = day % 7 < 5
            if trip is not None and day in (trip.out_day, trip.back_day):
                if day == trip.out_day:
                    self._travel_day(p, day, p.town, trip.town, p.home, trip.hotel)
                else:
                    self._travel_day(p, day, trip.town, p.town, trip.hotel, p.home)
                continue
            away = trip is not None and trip.out_day < day < trip.back_day
            town = trip.town if trip is not None and away else p.town
            home = trip.hotel if trip is not None and away else p.home
            if workday and not away and p.commute and self.random() > 0.06:
                self._commute(p, day)
            elif workday and away:
                self._outing(p, town, day, (8 * 3600 + 1800, 10 * 3600), home)
            self._leisure(p, town, day, home, workday, not away)
            self._events(p, town, day)

    # fraud -------------------------------------------------------------------------------

    def _victims(self, n: int, eligible: list[Person]) -> list[Person]:
        pool = [p for p in eligible if p.digits not in self.taken]
        chosen = self.rng.sample(pool, min(n, len(pool)))
        self.taken.update(p.digits for p in chosen)
        return chosen

    def _made_up(self, town: Town, mvno: bool = False) -> Person:
        p = Person(self._number(mvno), town)
        p.home = self._spot(town)
        return p

    def plant_uncorroborated(self) -> None:
        """Metro rides the map app reports in Shenzhen or Beijing and no gate ever saw."""
        eligible = [
            p
            for p in self.people
            if p.uses_map and p.own_phone and p.travel is None and p.town.operator is not None
        ]
        for p in self._victims(max(4, self.size // 30), eligible):
            for _ in range(self._int(4, 8)):
                day = self._int(0, DAYS - 1)
                a, b = self._near(p.home, 0.3, 1.2), self._spot(p.town)
                line_km = haversine_m(*a, *b) / 1000
                if line_km < 2.5:
                    b = _move(*a, self._uniform(3, 12), self._uniform(0, 2 * math.pi))
                    line_km = haversine_m(*a, *b) / 1000
                measured = line_km * self._uniform(1.18, 1.45)
                duration = int(measured / self._uniform(28, 38) * 3600) + self._int(60, 300)
                for _ in range(10):
                    start = NOVEMBER_MS + day * DAY_MS + self._int(7 * 3600, 21 * 3600) * 1000
                    end = start + duration * SECOND_MS
                    if self._free(p, start, end):
                        self._reserve(p, start, end)
                        self.trip(
                            "amap",
                            p,
                            "metro",
                            p.town.code,
                            (start, end),
                            km(measured),
                            "uncorroborated",
                            coords=(*a, *b),
                            device=device_id("amap", p.hardware(start)),
                            key=end + self._int(5, 600) * SECOND_MS,
                        )
                        break

    def _ghost_records(
        self, p: Person, platform: str, hw: int, n: int, first_day: int, kind: str
    ) -> None:
        """`n` records of a made-up or farmed account on one platform and device, within the
        week from `first_day`."""
        device = device_id(platform, hw)
        for _ in range(n):
            day = min(first_day + self._int(0, 6), DAYS - 1)
            if platform == "amap":
                scene = "walk" if self.random() < 0.7 else "bike"
                self._outdoor_kind(p, day, scene, device, kind)
            elif platform == "meituan":
                at = NOVEMBER_MS + day * DAY_MS + self._int(10 * 3600, 22 * 3600) * 1000
                self.event(
                    "meituan",
                    p,
                    "no_cutlery",
                    p.town.code,
                    at,
                    "1",
                    kind,
                    ref=self._ref("meituan"),
                    device=device,
                )
            else:
                at = NOVEMBER_MS + day * DAY_MS + self._int(8 * 3600, 23 * 3600) * 1000
                self.event(
                    "jingtong",
                    p,
                    "paperless",
                    JINGTONG_REGION,
                    at,
                    "1",
                    kind,
                    ref=self._ref("jingtong"),
                    device=device,
                )

    def _outdoor_kind(
        self,
        p: Person,
        day: int,
        scene: str,
        device: str,
        kind: str,
        window: tuple[int, int] = (7 * 3600, 22 * 3600),
        origin: tuple[float, float] | None = None,
    ) -> bool:
        """A planted walk or bike ride of an account at a free time of a day."""
        distance = self._uniform(0.8, 4.0) if scene == "walk" else self._uniform(2.0, 8.0)
        speed = self._uniform(3.8, 5.6) if scene == "walk" else self._uniform(10, 17)
        duration = int(distance / speed * 3600) * SECOND_MS
        origin = origin or self._near(p.home, 0, 1.5)
        for _ in range(10):
            start = NOVEMBER_MS + day * DAY_MS + self._int(*window) * SECOND_MS
            if self._free(p, start, start + duration):
                self._reserve(p, start, start + duration)
                dest = _move(*origin, distance / self._uniform(1.12, 1.5), self._uniform(0, 7))
                self.trip(
                    "amap",
                    p,
                    scene,
                    p.town.code,
                    (start, start + duration),
                    km(distance),
                    kind,
                    coords=(*origin, *dest),
                    device=device,
                    key=start + duration + self._int(5, 900) * SECOND_MS,
                )
                return True
        return False

    def plant_device_shared(self) -> None:
        """Phone farms: one device reporting for 20-50 numbers within a week."""
        platforms = ("meituan", "amap", "jingtong", "meituan", "amap")
        for i in range(max(2, round(self.size / 500))):
            platform = platforms[i % len(platforms)]
            town = BEIJING if platform == "jingtong" else TOWNS[self._int(0, len(TOWNS) - 1)]
            farm, first_day = self._hw(), self._int(0, DAYS - 7)
            for _ in range(self._int(20, 50)):
                p = self._made_up(town, mvno=self.random() < 0.7)
                self._ghost_records(p, platform, farm, self._int(2, 5), first_day, "device_shared")

    def plant_device_hopping(self) -> None:
        """Accounts reporting from 6-15 devices within a week."""
        for i in range(max(2, self.size // 200)):
            platform = "amap" if i % 2 == 0 else "meituan"
            p = self._made_up(TOWNS[self._int(0, len(TOWNS) - 1)], mvno=self.random() < 0.3)
            first_day = self._int(0, DAYS - 7)
            for _ in range(self._int(6, 15)):
                self._ghost_records(
                    p, platform, self._hw(), self._int(2, 6), first_day, "device_hopping"
                )

    def plant_velocity(self) -> None:
        """Trips in another city minutes after the citizen's genuine located trips."""
        eligible = [p for p in self.people if p.travel is None and len(p.located) >= 8]
        for p in self._victims(max(3, self.size // 30), eligible):
            hw = p.hardware(NOVEMBER_MS) if self.random() < 0.5 else self._hw()
            far = [t for t in TOWNS if haversine_m(t.lat, t.lon, p.town.lat, p.town.lon) > 1e6]
            days = sorted({t.day for t in p.located})
            for day in self.rng.sample(days, min(len(days), self._int(4, 7))):
                today = [
                    t
                    for t in p.located
                    if t.day == day and t.end < (NOVEMBER_MS + day * DAY_MS + 21 * HOUR_MS)
                ]
                elsewhere = far[self._int(0, len(far) - 1)]
                self.rng.shuffle(today)
                wanted, placed = self._int(1, 3), 0
                for genuine in today:
                    if placed >= wanted:
                        break
                    scene = "walk" if self.random() < 0.7 else "bike"
                    distance = self._uniform(0.8, 3.5) if scene == "walk" else self._uniform(2, 7)
                    speed = self._uniform(3.8, 5.6) if scene == "walk" else self._uniform(10, 17)
                    start = genuine.end + self._int(120, 1500) * SECOND_MS
                    end = start + int(distance / speed * 3600) * SECOND_MS
                    if not self._free(p, start, end, margin=SECOND_MS):
                        continue
                    self._reserve(p, start, end)
                    origin = self._spot(elsewhere, 8.0)
                    dest = _move(*origin, distance / self._uniform(1.12, 1.5), self._uniform(0, 7))
                    synced = NOVEMBER_MS + (day + 1) * DAY_MS - self._int(60, 600) * SECOND_MS
                    self.trip(
                        "amap",
                        p,
                        scene,
                        elsewhere.code,
                        (start, end),
                        km(distance),
                        "velocity",
                        coords=(*origin, *dest),
                        device=device_id("amap", hw),
                        key=synced,
                    )
                    placed += 1

    def _quiet_day(self, p: Person, scene: str) -> int:
        """A day on which the citizen has no clean record of the scene, if there is one."""
        days = [d for d in range(DAYS) if (scene, d) not in p.acts] or list(range(DAYS))
        return days[self._int(0, len(days) - 1)]

    def plant_volume(self) -> None:
        """Tons of paper on one person's receipts in a day; 130-200 walks of one account a day."""
        recyclers = [p for p in self.people if p.recycle_rate > 0]
        for p in self._victims(max(3, self.size // 200), recyclers):
            day = self._quiet_day(p, "recycling")
            total = self._uniform(2000, 6000)
            weights = [self._uniform(0.7, 1.3) for _ in range(self._int(3, 6))]
            for w in weights:
                self._receipt(p, day, total * w / sum(weights), "paper", "volume_outlier")
        walkers = [p for p in self.people if p.uses_map and p.own_phone and p.travel is None]
        for p in self._victims(max(2, self.size // 500), walkers):
            day = self._quiet_day(p, "walk")
            base = NOVEMBER_MS + day * DAY_MS
            cursor, n, target = base + 6 * HOUR_MS, 0, self._int(130, 200)
            device = device_id("amap", p.hardware(base))
            while n < target and cursor < base + 23 * HOUR_MS:
                duration = self._int(120, 300) * SECOND_MS
                if self._free(p, cursor, cursor + duration, margin=SECOND_MS):
                    self._reserve(p, cursor, cursor + duration)
                    distance = duration / HOUR_MS * self._uniform(3.8, 5.8)
                    origin = self._near(p.home, 0, 1.0)
                    dest = _move(*origin, distance / self._uniform(1.12, 1.5), self._uniform(0, 7))
                    self.trip(
                        "amap",
                        p,
                        "walk",
                        p.town.code,
                        (cursor, cursor + duration),
                        km(distance),
                        "volume_outlier",
                        coords=(*origin, *dest),
                        device=device,
                        key=cursor + duration + 30 * SECOND_MS,
                    )
                    n += 1
                cursor += duration + self._int(30, 120) * SECOND_MS

    def plant_bursts(self) -> None:
        """100-300 records of one scene and region starting in one minute of the small hours."""
        shapes = (("meituan", "no_cutlery"), ("amap", "bike"), ("jingtong", "paperless"),
                  ("amap", "walk"), ("meituan", "no_cutlery"))  # fmt: skip
        for i in range(max(1, self.size // 500)):
            platform, scene = shapes[i % len(shapes)]
            town = BEIJING if platform == "jingtong" else TOWNS[self._int(0, len(TOWNS) - 1)]
            real = i % 2 == 1
            day = self._int(0, DAYS - 1)
            minute = NOVEMBER_MS + day * DAY_MS + self._int(60, 299) * MINUTE_MS
            residents = [p for p in self.people if p.town is town and p.digits not in self.taken]
            people = self.rng.sample(residents, min(len(residents), self._int(100, 300)))
            if not real:
                people = [self._made_up(town) for _ in range(self._int(100, 300))]
            for p in people:
                at = minute + self._int(0, 59_999)
                if platform == "amap":
                    hw = p.hardware(at) if real else self._hw()
                    distance = self._uniform(0.8, 3.0) if scene == "walk" else self._uniform(2, 8)
                    speed = self._uniform(4, 5.5) if scene == "walk" else self._uniform(10, 16)
                    at -= at % SECOND_MS
                    end = at + int(distance / speed * 3600) * SECOND_MS
                    if not self._free(p, at, end):
                        continue
                    self._reserve(p, at, end)
                    origin = self._near(p.home, 0, 2.0)
                    dest = _move(*origin, distance / self._uniform(1.12, 1.5), self._uniform(0, 7))
                    self.trip(
                        "amap",
                        p,
                        scene,
                        town.code,
                        (at, end),
                        km(distance),
                        "burst",
                        coords=(*origin, *dest),
                        device=device_id("amap", hw),
                        key=minute + MINUTE_MS,
                    )
                else:
                    hw = p.hardware(at) if real else self._hw()
                    region = JINGTONG_REGION if platform == "jingtong" else town.code
                    at -= at % SECOND_MS
                    self.event(
                        platform,
                        p,
                        scene,
                        region,
                        at,
                        "1",
                        "burst",
                        ref=self._ref(platform),
                        device=device_id(platform, hw),
                    )

    def plant_repeated(self) -> None:
        """A genuine walk or bike ride replayed 5-15 times in the following days."""
        eligible = [
            p
            for p in self.people
            if p.travel is None
            and any(t.scene in ("walk", "bike") and t.day <= DAYS - 4 for t in p.located)
        ]
        for p in self._victims(max(3, self.size // 60), eligible):
            originals = [t for t in p.located if t.scene in ("walk", "bike") and t.day <= DAYS - 4]
            o = originals[self._int(0, len(originals) - 1)]
            duration = o.end - o.start
            written, copies = 0, self._int(5, 15)
            for _ in range(200):
                if written >= copies:
                    break
                day = o.day + self._int(0, 6)
                start = NOVEMBER_MS + day * DAY_MS + self._int(7 * 3600, 21 * 3600) * SECOND_MS
                if day >= DAYS or start <= o.end or not self._free(p, start, start + duration):
                    continue
                self._reserve(p, start, start + duration)
                self.trip(
                    "amap",
                    p,
                    o.scene,
                    o.town,
                    (start, start + duration),
                    o.distance,
                    "repeated_trip",
                    coords=o.coords,
                    device=o.device,
                    key=start + duration + self._int(5, 900) * SECOND_MS,
                )
                written += 1

    # all of it ---------------------------------------------------------------------------

    def run(self) -> None:
        for _ in range(self.size):
            self._citizen()
        self._households()
        for p in self.people:
            self._stations(p)
        self._travels()
        for p in self.people:
            self._month(p)
        self.plant_uncorroborated()
        self.plant_device_shared()
        self.plant_device_hopping()
        self.plant_velocity()
        self.plant_volume()
        self.plant_bursts()
        self.plant_repeated()


def file_name(platform: str, week: int) -> str:
    """The name of a platform's file of one week."""
    return f"{platform}-2026-11-w{week}.jsonl"


def receive_order() -> list[tuple[str, int]]:
    """(platform, week) of every possible file, in receive order."""
    return [(platform, week) for week in range(1, WEEKS + 1) for platform in RECEIVE_ORDER]


def generate_fraud(out_dir: Path | str, citizens: int = 2000, seed: int = 1) -> FraudTruth:
    """Write four weeks of member-platform files with planted fraud into `out_dir`, with
    `order.json` (receive order) and `truth.parquet` (the kind of every record).

    Args:
        out_dir: folder for the files (created if needed).
        citizens: how many citizens live in the four cities (about 60 records each).
        seed: same seed, same files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    traffic = _Traffic(citizens, seed)
    traffic.run()
    by_file: dict[tuple[str, int], list[Rec]] = {}
    for rec in traffic.records:
        by_file.setdefault((rec.platform, rec.week), []).append(rec)
    files: list[str] = []
    columns: tuple[list[str], list[str], list[str], list[str]] = ([], [], [], [])
    for platform, week in receive_order():
        rows = by_file.get((platform, week))
        if not rows:
            continue
        rows.sort(key=lambda r: r.key)
        name = file_name(platform, week)
        with (out / name).open("w", encoding="utf-8", newline="\n") as f:
            f.write("\n".join(r.line for r in rows) + "\n")
        files.append(name)
        for r in rows:
            columns[0].append(platform)
            columns[1].append(r.record_id)
            columns[2].append(r.kind)
            columns[3].append(name)
    table = pa.Table.from_arrays([pa.array(c, pa.string()) for c in columns], schema=TRUTH_SCHEMA)
    pq.write_table(table, out / "truth.parquet")
    (out / "order.json").write_text(json.dumps(files, indent=1) + "\n", encoding="utf-8")
    return FraudTruth(files, table, dict(sorted(traffic.hard.items())))


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the files, order and truth into a folder and print counts by kind."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.fraud_traffic",
        description="Write four weeks of member-platform traffic with planted fraud.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--citizens", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    truth = generate_fraud(args.out, args.citizens, args.seed)
    elapsed = time.perf_counter() - started
    counts = truth.counts()
    total = sum(counts.values())
    planted = total - counts["clean"]
    print(
        f"{total} records, {planted} planted ({planted / max(total, 1):.1%}), "
        f"{len(truth.files)} files in {args.out}: {elapsed:.1f} s"
    )
    print(json.dumps({"by_kind": counts, "hard_cases": truth.hard}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
