"""Properties of the clearing over generated worlds, on SQLite and PostgreSQL.

A world is a few behaviours of two citizens in Chengdu in October 2026 (trips by bus, metro or
bike; paperless services and paper handed in), each reported by one to three member platforms:
with or without a ref in any case and spacing, with clocks a few minutes apart, sometimes in
another trip scene, sometimes broken (an unknown region) and then sent again corrected under a
new record_id. Each platform's reports are split into files of any format, and the files are
ingested in any order, some of them twice. Distinct behaviours never share a ref and never
overlap in time, and no citizen has more than two behaviours a day, so no cap binds. Every
example starts from an empty database.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import ROUND_FLOOR, Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.errors import NotFoundError
from puhui.service import admin, ingest, ledger, queries
from tests.builders import write_csv, write_jsonl, write_parquet
from tests.conftest import NOW

PLATFORMS = ("amap", "didi", "bank")
WRITERS = {"jsonl": write_jsonl, "csv": write_csv, "parquet": write_parquet}
BEIJING = timezone(timedelta(hours=8))
KEEP = ("record_id", "status", "reason", "reduction_g", "methodology")

# The same two citizens, spelled as different platforms spell them.
CITIZENS = {
    "13800138000": ("13800138000", "+86 138 0013 8000", "138-0013-8000"),
    "11010519491231002X": ("11010519491231002X", "11010519491231002x", "110105 19491231 002X"),
}

# Reductions per unit in Chengdu 510100 under cn-common@1.0.0 (docs/methodologies/README.md).
PER_UNIT = {
    "bus": Decimal("24"),
    "metro": Decimal("46.7"),
    "bike": Decimal("43"),
    "paperless": Decimal("24"),
    "recycling": Decimal("219.72883"),  # paper
}
TRIP_SCENES = ("bus", "metro", "bike")


def grams(scene: str, amount: str) -> int:
    """floor(floor_0.001(amount) × ER), the credit of one record before caps."""
    floored = Decimal(amount).quantize(Decimal("0.001"), rounding=ROUND_FLOOR)
    return int((floored * PER_UNIT[scene]).to_integral_value(rounding=ROUND_FLOOR))


@dataclass(frozen=True)
class Report:
    """One platform's record of a behaviour."""

    behaviour: int
    record: dict[str, Any]
    broken: bool

    @property
    def platform(self) -> str:
        return str(self.record["platform"])

    @property
    def record_id(self) -> str:
        return str(self.record["record_id"])

    @property
    def grams(self) -> int:
        amount = self.record.get("distance_km") or self.record["quantity"]
        return grams(self.record["scene"], amount)


@dataclass(frozen=True)
class World:
    """Behaviours as reported, the files they were sent in, and the order of ingestion."""

    behaviours: int
    files: tuple[tuple[str, str, tuple[Report, ...]], ...]  # platform, format, reports
    steps: tuple[int, ...]  # file indexes in ingestion order; a repeated index is a replay


def moment(at: datetime, utc: bool) -> str:
    """RFC 3339 with a Beijing offset, or the same instant in UTC."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if utc else at.isoformat()


amounts = st.integers(5_000, 99_999).map(lambda n: str(Decimal(n).scaleb(-4)))  # 0.5000–9.9999


@st.composite
def reports_of(draw: st.DrawFn, i: int) -> list[Report]:
    """The reports of behaviour `i`: day 1 + i // 2, at 06:00 or 10:00 Beijing time."""
    citizen = draw(st.sampled_from(sorted(CITIZENS)))
    platforms = draw(st.lists(st.sampled_from(PLATFORMS), min_size=1, max_size=3, unique=True))
    is_trip = draw(st.booleans())
    ref = f"REF-{i}-X" if not is_trip or draw(st.booleans()) else None
    start = datetime(2026, 10, 1 + i // 2, 6 + 4 * (i % 2), tzinfo=BEIJING)
    minutes = draw(st.integers(20, 60))
    scene = draw(st.sampled_from((*TRIP_SCENES,) if is_trip else ("paperless", "recycling")))
    reports = []
    for platform in platforms:
        record: dict[str, Any] = {
            "platform": platform,
            "record_id": f"b{i}-{platform}",
            "subject": draw(st.sampled_from(CITIZENS[citizen])),
            "region": "510100",
        }
        broken = draw(st.integers(0, 4)) == 0
        if broken:
            record["region"] = "999999"
        if ref is not None and (not is_trip or draw(st.booleans())):
            record["ref"] = draw(st.sampled_from([ref, ref.lower(), f"  {ref} ", ref.title()]))
        utc = draw(st.booleans())
        if is_trip:
            # Clocks disagree by up to four minutes: any two reports still overlap by at least
            # twelve of twenty or more minutes, more than half.
            skew = timedelta(seconds=draw(st.integers(-240, 240)))
            record["scene"] = draw(st.sampled_from(TRIP_SCENES))
            record["start"] = moment(start + skew, utc)
            record["end"] = moment(start + timedelta(minutes=minutes) + skew, utc)
            record["distance_km"] = draw(amounts)
        else:
            record["scene"] = scene
            record["start"] = moment(start + timedelta(minutes=draw(st.integers(0, 30))), utc)
            if scene == "paperless":
                record["quantity"] = str(draw(st.integers(1, 3)))
            else:
                record["quantity"] = draw(amounts)
                record["material"] = "paper"
        reports.append(Report(i, record, broken))
        if broken and draw(st.booleans()):
            fixed = record | {"record_id": f"b{i}-{platform}-fixed", "region": "510100"}
            reports.append(Report(i, fixed, broken=False))
    return reports


@st.composite
def worlds(draw: st.DrawFn) -> World:
    """Behaviours, their reports split into files per platform, and an ingestion order."""
    n = draw(st.integers(1, 4))
    reports = [r for i in range(n) for r in draw(reports_of(i))]
    files: list[tuple[str, str, tuple[Report, ...]]] = []
    for platform in PLATFORMS:
        own = draw(st.permutations([r for r in reports if r.platform == platform]))
        if not own:
            continue
        cut = draw(st.integers(0, len(own) - 1)) if len(own) > 1 else 0
        for part in (own[:cut], own[cut:]):
            if part:
                files.append((platform, draw(st.sampled_from(sorted(WRITERS))), tuple(part)))
    order = list(draw(st.permutations(range(len(files)))))
    for file, offset in draw(
        st.lists(st.tuples(st.integers(0, len(files) - 1), st.integers(0, 8)), max_size=2)
    ):
        first = order.index(file)
        order.insert(min(len(order), first + 1 + offset), file)
    return World(n, tuple(files), tuple(order))


class Clearing:
    """An initialised clearing on a fresh database, with the three platforms registered."""

    def __init__(self, url: str, folder: Path) -> None:
        self.folder = folder
        self.app: App = bootstrap(Settings(url, folder / "subject.key"), clock=lambda: NOW)
        admin.init(self.app)
        for code in PLATFORMS:
            admin.add_platform(self.app, code)

    def send(self, platform: str, path: Path) -> list[dict[str, Any]]:
        tables: list[pa.Table] = []
        ingest.ingest_files(self.app, platform, [path], sink=tables.append)
        return [{k: r[k] for k in KEEP} for r in pa.concat_tables(tables).to_pylist()]

    def state(self) -> tuple[ledger.LedgerTotals, dict[str, int]]:
        """Ledger size, grams issued and every citizen's balance."""
        balances = {}
        for citizen in CITIZENS:
            try:
                balances[citizen] = queries.account(self.app, citizen).balance_g
            except NotFoundError:
                balances[citizen] = 0
        return ledger.totals(self.app), balances


@pytest.fixture
def clearings(new_database: Callable[[Path], str]) -> Callable[[], Iterator[Clearing]]:
    """Open a clearing on a new database in a temporary folder, closed after the example."""

    def clearing() -> Iterator[Clearing]:
        with tempfile.TemporaryDirectory() as folder:
            opened = Clearing(new_database(Path(folder)), Path(folder))
            try:
                yield opened
            finally:
                opened.app.close()

    return clearing


@settings(
    max_examples=12,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_files_in_any_order_with_any_replays_credit_each_behaviour_once(
    clearings: Callable[[], Iterator[Clearing]], world: World
) -> None:
    """The first received valid report of each behaviour is credited, every other one is a
    duplicate or rejected, replays answer as before and move nothing, the ledger stays sound."""
    for clearing in clearings():
        paths = [
            WRITERS[fmt](clearing.folder / f"f{n}-{platform}.{fmt}", [r.record for r in reports])
            for n, (platform, fmt, reports) in enumerate(world.files)
        ]
        first_receipts: dict[int, list[dict[str, Any]]] = {}
        received: list[Report] = []
        for step in world.steps:
            platform, _fmt, reports = world.files[step]
            before = clearing.state()
            receipts = clearing.send(platform, paths[step])
            if step in first_receipts:
                assert receipts == first_receipts[step], "a replay answers as the first time"
                assert clearing.state() == before, "a replay moves nothing"
            else:
                first_receipts[step] = receipts
                received.extend(reports)
            assert ledger.verify(clearing.app) == []

        by_id = {
            (world.files[s][0], r["record_id"]): r for s, rs in first_receipts.items() for r in rs
        }
        expected_total = 0
        for behaviour in range(world.behaviours):
            reports = [r for r in received if r.behaviour == behaviour]
            valid = [r for r in reports if not r.broken]
            credited = [
                r for r in reports if by_id[r.platform, r.record_id]["status"] == "credited"
            ]
            assert len(credited) == (1 if valid else 0), "each behaviour is credited once"
            for report in reports:
                receipt = by_id[report.platform, report.record_id]
                if report.broken:
                    assert (receipt["status"], receipt["reason"]) == ("rejected", "unknown_region")
                elif report is valid[0]:
                    assert (receipt["status"], receipt["reason"]) == ("credited", "")
                    assert receipt["reduction_g"] == report.grams
                    expected_total += report.grams
                else:
                    assert receipt["status"] == "duplicate"
                    assert receipt["reduction_g"] == 0
        credited_g = sum(r["reduction_g"] for rs in first_receipts.values() for r in rs)
        assert credited_g == expected_total
        assert ledger.totals(clearing.app).issued_g == expected_total
