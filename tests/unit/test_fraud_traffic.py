"""The fraud-benchmark traffic (`bench.fraud_traffic`) at a small size: files in receive order,
valid records, every kind of fraud planted as labelled, and the hard clean cases present."""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from bench.fraud_traffic import (
    DAYS,
    KINDS,
    NOVEMBER_MS,
    RECEIVE_ORDER,
    FraudTruth,
    generate_fraud,
)
from puhui.domain.rules import MAX_SPEED_KMH, great_circle_m

CITIZENS = 150
DAY_MS = 86_400_000
MINUTE_MS = 60_000
TRIP_SCENES = {"walk", "bike", "bus", "metro"}
REQUIRED = ("platform", "record_id", "subject", "scene", "region", "start")
NAME = re.compile(r"^([a-z]+)-2026-11-w([1-4])\.jsonl$")

Record = dict[str, Any]


def _ms(text: str) -> int:
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return round(moment.timestamp() * 1000)


def _read(out: Path, files: list[str], truth: FraudTruth) -> list[Record]:
    """Every written record in receive order, with its kind, canonical subject, times in ms."""
    kinds = {
        (p, r): k
        for p, r, k in zip(
            truth.truth.column("platform").to_pylist(),
            truth.truth.column("record_id").to_pylist(),
            truth.truth.column("kind").to_pylist(),
            strict=True,
        )
    }
    records: list[Record] = []
    for position, name in enumerate(files):
        for line in (out / name).read_text(encoding="utf-8").splitlines():
            r = json.loads(line)
            r["_file"], r["_position"] = name, position
            r["_kind"] = kinds[(r["platform"], r["record_id"])]
            r["_subject"] = re.sub(r"\D", "", r["subject"])[-11:]
            r["_s"] = _ms(r["start"])
            r["_e"] = _ms(r["end"]) if "end" in r else None
            r["_seq"] = len(records)
            records.append(r)
    return records


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, FraudTruth, list[Record]]:
    out = tmp_path_factory.mktemp("fraud")
    truth = generate_fraud(out, citizens=CITIZENS, seed=7)
    return out, truth, _read(out, truth.files, truth)


def _located(r: Record) -> bool:
    return "origin_lat" in r


def test_files_are_written_in_receive_order(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    out, truth, records = generated
    assert json.loads((out / "order.json").read_text()) == truth.files
    keys = []
    for name in truth.files:
        found = NAME.match(name)
        assert found, name
        assert (out / name).exists()
        keys.append((int(found.group(2)), RECEIVE_ORDER.index(found.group(1))))
    assert keys == sorted(keys)
    assert len(keys) == len(set(keys)) == 4 * len(RECEIVE_ORDER)
    # The truth lists the records in the same order as the files hold them.
    assert truth.truth.column("file").to_pylist() == [r["_file"] for r in records]
    assert truth.truth.column("record_id").to_pylist() == [r["record_id"] for r in records]
    assert pq.read_table(out / "truth.parquet").equals(truth.truth)


def test_every_record_is_a_valid_record_of_its_file(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, _, records = generated
    assert 5_000 < len(records) < 20_000
    for r in records:
        for name in REQUIRED:
            assert isinstance(r.get(name), str), (name, r)
            assert r[name], (name, r)
        platform, week = NAME.match(r["_file"]).groups()  # type: ignore[union-attr]
        assert r["platform"] == platform
        day = (r["_s"] - NOVEMBER_MS) // DAY_MS
        assert 0 <= day < DAYS, r
        assert day // 7 + 1 == int(week), r
        assert re.fullmatch(r"1[3-9]\d{9}", r["_subject"]), r["subject"]
        assert re.fullmatch(r"\d{6}", r["region"])
        if r["scene"] in TRIP_SCENES:
            assert r["_e"] is not None
            assert float(r["distance_km"]) >= 0
            assert "quantity" not in r
        else:
            assert r["_e"] is None
            assert float(r["quantity"]) > 0
        if r["scene"] == "recycling":
            assert r["material"] in ("paper", "plastic", "metal", "glass", "textile")
        if r["platform"] in ("amap", "meituan", "jingtong"):
            assert r["device"]


def test_every_trip_is_within_its_mode_bounds(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, _, records = generated
    for r in records:
        if r["_e"] is None:
            continue
        duration = r["_e"] - r["_s"]
        metres = round(float(r["distance_km"]) * 1000)
        assert 0 < duration <= DAY_MS, r
        assert metres * 3600 <= MAX_SPEED_KMH[r["scene"]] * duration, r
        if _located(r):
            line = great_circle_m(r["origin_lat"], r["origin_lon"], r["dest_lat"], r["dest_lon"])
            assert metres >= line * 0.98 - 50, r


def test_each_kind_is_present_and_ids_are_unique(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, truth, records = generated
    counts = truth.counts()
    assert set(counts) == set(KINDS)
    assert all(counts[k] > 0 for k in KINDS), counts
    assert sum(counts.values()) == len(records)
    ids = Counter((r["platform"], r["record_id"]) for r in records)
    assert max(ids.values()) == 1
    refs = Counter((r["scene"], r["ref"].strip().lower()) for r in records if "ref" in r)
    assert max(refs.values()) == 1


def test_same_seed_same_files(
    generated: tuple[Path, FraudTruth, list[Record]], tmp_path: Path
) -> None:
    out, truth, _ = generated
    again = generate_fraud(tmp_path / "again", citizens=CITIZENS, seed=7)
    assert again.files == truth.files
    for name in truth.files:
        assert (tmp_path / "again" / name).read_bytes() == (out / name).read_bytes()
    assert again.truth.equals(truth.truth)
    other = generate_fraud(tmp_path / "other", citizens=CITIZENS, seed=8)
    assert (tmp_path / "other" / other.files[0]).read_bytes() != (out / truth.files[0]).read_bytes()


def test_farm_devices_carry_many_numbers(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, _, records = generated
    farms: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r["_kind"] == "device_shared":
            farms[r["device"]].add(r["_subject"])
    assert farms
    assert all(len(numbers) >= 20 for numbers in farms.values())
    shared = {r["device"] for r in records if r["_kind"] == "device_shared"}
    assert all(r["_kind"] == "device_shared" for r in records if r.get("device") in shared)


def test_hopping_accounts_use_many_devices_in_a_week(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, _, records = generated
    accounts: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r["_kind"] == "device_hopping":
            accounts[r["_subject"]].append(r)
    assert accounts
    for mine in accounts.values():
        starts = [r["_s"] for r in mine]
        assert max(starts) - min(starts) < 7 * DAY_MS
        assert len({r["device"] for r in mine}) >= 6


def test_repeated_trips_copy_a_clean_original(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, _, records = generated
    clean: dict[tuple[str, str, str, int], list[Record]] = defaultdict(list)
    for r in records:
        if r["_kind"] == "clean" and r["_e"] is not None:
            clean[(r["_subject"], r["scene"], r["distance_km"], r["_e"] - r["_s"])].append(r)
    copies: Counter[tuple[str, str, str, int]] = Counter()
    for r in records:
        if r["_kind"] != "repeated_trip":
            continue
        key = (r["_subject"], r["scene"], r["distance_km"], r["_e"] - r["_s"])
        originals = [o for o in clean[key] if o["_s"] < r["_s"] < o["_s"] + 7 * DAY_MS]
        assert len(originals) == 1, r
        o = originals[0]
        assert (o["origin_lat"], o["dest_lon"], o["device"]) == (
            r["origin_lat"],
            r["dest_lon"],
            r["device"],
        )
        copies[key] += 1
    assert copies
    assert all(5 <= n <= 15 for n in copies.values())


def test_velocity_trips_follow_genuine_ones_far_away(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, _, records = generated
    genuine: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r["_kind"] == "clean" and _located(r):
            genuine[r["_subject"]].append(r)
    fakes = [r for r in records if r["_kind"] == "velocity"]
    assert fakes
    for fake in fakes:
        day = (fake["_s"] - NOVEMBER_MS) // DAY_MS
        before = [
            g
            for g in genuine[fake["_subject"]]
            if 0 < fake["_s"] - g["_e"] <= 30 * MINUTE_MS
            and great_circle_m(g["dest_lat"], g["dest_lon"], fake["origin_lat"], fake["origin_lon"])
            >= 50_000
        ]
        assert before, fake
        # Received after every genuine trip of the citizen that day.
        same_day = [
            g for g in genuine[fake["_subject"]] if (g["_s"] - NOVEMBER_MS) // DAY_MS == day
        ]
        assert all(g["_seq"] < fake["_seq"] for g in same_day)
        km = great_circle_m(
            before[0]["dest_lat"], before[0]["dest_lon"], fake["origin_lat"], fake["origin_lon"]
        )
        hours = (fake["_s"] - before[0]["_e"]) / 3_600_000
        assert km / 1000 / hours > 800


def test_volume_outliers_and_bursts_are_what_they_say(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, _, records = generated
    days: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    bursts: Counter[tuple[str, str, str, int]] = Counter()
    for r in records:
        if r["_kind"] == "volume_outlier":
            day = (r["_s"] - NOVEMBER_MS) // DAY_MS
            days[(r["_subject"], r["scene"], day)].append(float(r.get("quantity", 0)))
        elif r["_kind"] == "burst":
            bursts[(r["platform"], r["region"], r["scene"], r["_s"] // MINUTE_MS)] += 1
    assert {scene for _, scene, _ in days} == {"walk", "recycling"}
    for (_, scene, _), amounts in days.items():
        assert len(amounts) > 60 if scene == "walk" else sum(amounts) >= 1_000
    assert bursts
    assert all(100 <= n <= 300 for n in bursts.values())


def test_uncorroborated_rides_have_no_gate_record(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, _, records = generated
    operator: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        if r["platform"] in ("szmetro", "bjtransit"):
            operator[r["_subject"]].append(r)

    def overlap(a: Record, b: Record) -> int:
        return int(min(a["_e"], b["_e"]) - max(a["_s"], b["_s"]))

    planted = [r for r in records if r["_kind"] == "uncorroborated"]
    assert planted
    for r in planted:
        assert (r["platform"], r["scene"], r["region"][:2]) in (
            ("amap", "metro", "11"),
            ("amap", "metro", "44"),
        )
        assert all(overlap(r, o) <= 0 for o in operator[r["_subject"]])
    # Every clean map-app metro ride in Beijing or Shenzhen is the same ride as a gate record.
    gated = ("110000", "440300")
    for r in records:
        if r["_kind"] == "clean" and r["platform"] == "amap" and r["scene"] == "metro":
            if r["region"] not in gated:
                continue
            assert any(
                overlap(r, o) * 2 > min(r["_e"] - r["_s"], o["_e"] - o["_s"])
                for o in operator[r["_subject"]]
                if o["scene"] == "metro"
            ), r


def test_clean_traffic_holds_the_hard_cases(
    generated: tuple[Path, FraudTruth, list[Record]],
) -> None:
    _, truth, records = generated
    clean = [r for r in records if r["_kind"] == "clean"]
    by_device: dict[str, set[str]] = defaultdict(set)
    by_citizen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in clean:
        if "device" in r:
            by_device[r["device"]].add(r["_subject"])
            by_citizen[(r["platform"], r["_subject"])].add(r["device"])
    sharing = Counter(len(c) for c in by_device.values())
    assert max(sharing) <= 3
    assert sharing[2] + sharing[3] > 0  # households
    assert 2 <= max(len(d) for d in by_citizen.values()) <= 3  # a new phone, a shared tablet
    # Map-app metro rides where no operator reports them.
    assert any(r["scene"] == "metro" and r["region"] in ("310000", "510100") for r in clean)
    # A business traveller: two walks the same day in cities far apart, 150-450 km/h between.
    located: dict[str, list[Record]] = defaultdict(list)
    for r in clean:
        if _located(r):
            located[r["_subject"]].append(r)
    travels = 0
    for trips in located.values():
        trips.sort(key=lambda r: r["_s"])
        for a, b in itertools.pairwise(trips):
            metres = great_circle_m(a["dest_lat"], a["dest_lon"], b["origin_lat"], b["origin_lon"])
            if metres > 500_000:
                kmh = metres / 1000 / ((b["_s"] - a["_e"]) / 3_600_000)
                assert 140 <= kmh <= 460, (a, b)
                travels += 1
    assert travels > 0
    assert truth.hard["households"] > 0
    assert truth.hard["moving_house"] > 0
    assert truth.hard["long_walks"] > 0
