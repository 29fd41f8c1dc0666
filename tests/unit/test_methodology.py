"""Worked examples of the methodology catalogue: coverage, selection, quantification, rounding,
versions and their lineage.

The expected grams are those of the pages in docs/methodologies/.
"""

from __future__ import annotations

import dataclasses
import re
import shutil
from collections.abc import Callable, Sequence, Set
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from puhui.adapters.methodology_files import load_catalogue, shipped_folder
from puhui.domain import expressions
from puhui.domain.errors import FactorNotFoundError, MethodologyError
from puhui.domain.factors import Evidence, Factor, FactorTable
from puhui.domain.methodology import (
    Cap,
    Catalogue,
    Change,
    Methodology,
    MethodologyStatus,
    Parameter,
    SceneRule,
    UnitQuantification,
    change_between,
    reduction_for,
    semver,
    step_of,
)
from puhui.domain.reasons import Status
from puhui.domain.regions import Region, RegionCatalogue
from puhui.domain.scenes import SCENES
from puhui.domain.settlement import Candidate, caps_of, settle

DAY = date(2025, 6, 1)
# The two editions of Shenzhen's metro factor: the launch figure (46.8, pinned by
# sz-public-transit@1.0.0) and the 2022-09 report (46.7, pinned by its correction 1.0.1).
SZ_METRO_LAUNCH = "metro_reduction_citymix/440300/2021-12"
SZ_METRO_REPORTED = "metro_reduction_citymix/440300/2021"


@pytest.fixture(scope="module")
def shipped() -> Catalogue:
    """The methodologies, factors and regions shipped with the package."""
    return load_catalogue()


# Coverage ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "day",
    [
        date(2025, 1, 1),
        date(2025, 6, 1),
        date(2025, 12, 31),
        date(2026, 1, 1),
        date(2026, 6, 30),
        date(2026, 12, 31),
    ],
)
def test_every_province_and_prefecture_is_covered_for_all_nine_scenes(
    shipped: Catalogue, day: date
) -> None:
    """Every (scene, region, material) a record could name in 2025–2026 can be quantified."""
    assert shipped.check_coverage(day) == []


def test_coverage_is_checked_on_every_province_and_prefecture(shipped: Catalogue) -> None:
    """The 34 provincial divisions and their prefectures are in the region catalogue."""
    levels = [shipped.regions.get(code).level for code in shipped.regions.codes()]  # type: ignore[union-attr]
    assert levels.count("province") == 34
    assert levels.count("prefecture") > 300
    assert len(SCENES) == 9


def test_coverage_reports_what_cannot_be_quantified(shipped: Catalogue) -> None:
    """Before cn-common is in force (2022-05-05), only Shenzhen's bus and metro are covered."""
    problems = shipped.check_coverage(date(2022, 1, 1))
    assert "walk/110000/: no methodology" in problems
    assert "recycling/510100/paper: no methodology" in problems
    assert not any(p.startswith(("bus/440300/", "metro/440300/")) for p in problems)


def test_coverage_holds_on_every_boundary_of_the_catalogue_since_cn_common(
    shipped: Catalogue,
) -> None:
    """On each day a version starts or ends from 2022-05-05 on, nothing is left uncovered."""
    boundaries = [d for d in shipped.boundaries() if d >= date(2022, 5, 5)]
    assert date(2024, 10, 1) in boundaries
    for day in boundaries:
        assert shipped.check_coverage(day) == [], day


# Selection --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scene", "region", "day", "methodology"),
    [
        ("bus", "440300", DAY, "sz-public-transit@1.0.1"),  # Shenzhen's own (1.0.0 corrected)
        ("metro", "440300", DAY, "sz-public-transit@1.0.1"),
        ("bus", "440100", DAY, "cn-common@1.0.0"),  # Guangzhou: not in sz's jurisdiction
        ("walk", "440300", DAY, "cn-common@1.0.0"),  # sz covers bus and metro only
        ("bike", "440300", DAY, "cn-common@1.0.0"),
        ("bus", "110000", DAY, "bj-low-carbon-travel@1.0.0"),  # Beijing
        ("metro", "110100", DAY, "bj-low-carbon-travel@1.0.0"),  # a Beijing prefecture code
        ("bus", "120100", DAY, "bj-low-carbon-travel@1.0.0"),  # Tianjin
        ("metro", "130100", DAY, "bj-low-carbon-travel@1.0.0"),  # Shijiazhuang, Hebei
        ("walk", "110000", DAY, "cn-common@1.0.0"),  # bj covers bus and metro only
        ("ev", "110000", DAY, "cn-common@1.0.0"),
        ("bus", "510100", DAY, "cn-common@1.0.0"),  # Chengdu
        ("recycling", "510100", DAY, "cn-common@1.0.0"),
        ("metro", "110000", date(2024, 9, 30), "cn-common@1.0.0"),  # before DB11/T 3043-2024
        ("metro", "110000", date(2024, 10, 1), "bj-low-carbon-travel@1.0.0"),
        ("bus", "440300", date(2022, 1, 1), "sz-public-transit@1.0.1"),  # before cn-common
        ("metro", "440300", date(2021, 12, 16), "sz-public-transit@1.0.1"),  # 1.0.0's first day
    ],
)
def test_the_most_specific_jurisdiction_in_force_quantifies(
    shipped: Catalogue, scene: str, region: str, day: date, methodology: str
) -> None:
    """Prefecture before province before grid region before CN, among versions in force."""
    selected = shipped.select(scene, region, day)
    assert selected is not None
    assert selected.ref == methodology


@pytest.mark.parametrize(
    ("scene", "region", "day"),
    [
        ("bus", "440300", date(2021, 12, 10)),  # before sz (2021-12-16) and cn-common
        ("walk", "510100", date(2022, 1, 1)),  # before cn-common (2022-05-05)
        ("walk", "510100", date(2022, 5, 4)),
    ],
)
def test_nothing_quantifies_before_a_methodology_is_in_force(
    shipped: Catalogue, scene: str, region: str, day: date
) -> None:
    """No methodology in force: `no_methodology`, never a guess."""
    assert shipped.select(scene, region, day) is None
    assert shipped.quantify(scene, region, "", day) is None


# Worked examples --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scene", "region", "material", "day", "amount", "grams", "methodology"),
    [
        # bus, 5 km
        ("bus", "110000", "", DAY, "5", 1079, "bj-low-carbon-travel@1.0.0"),
        ("bus", "120100", "", DAY, "5", 1079, "bj-low-carbon-travel@1.0.0"),
        ("bus", "440300", "", DAY, "5", 134, "sz-public-transit@1.0.1"),
        ("bus", "510100", "", DAY, "5", 120, "cn-common@1.0.0"),
        ("bus", "440100", "", DAY, "5", 120, "cn-common@1.0.0"),
        ("bus", "110000", "", DAY, "5.0009", 1079, "bj-low-carbon-travel@1.0.0"),
        # metro
        ("metro", "110000", "", DAY, "12.3", 2590, "bj-low-carbon-travel@1.0.0"),
        ("metro", "130100", "", DAY, "12.3", 2590, "bj-low-carbon-travel@1.0.0"),
        ("metro", "110000", "", date(2024, 9, 30), "12.3", 574, "cn-common@1.0.0"),
        ("metro", "440300", "", DAY, "12.3", 574, "sz-public-transit@1.0.1"),
        ("metro", "440300", "", DAY, "0.9999", 46, "sz-public-transit@1.0.1"),
        ("metro", "440300", "", DAY, "5", 233, "sz-public-transit@1.0.1"),
        ("metro", "440300", "", date(2022, 1, 1), "5", 233, "sz-public-transit@1.0.1"),
        ("metro", "510100", "", DAY, "12.3", 574, "cn-common@1.0.0"),
        # walk and bike
        ("walk", "510100", "", DAY, "3.25", 139, "cn-common@1.0.0"),
        ("walk", "110000", "", DAY, "8", 344, "cn-common@1.0.0"),  # before the day cap
        ("bike", "440300", "", DAY, "4.2", 180, "cn-common@1.0.0"),
        # ev, 30 km
        ("ev", "110000", "", DAY, "30", 2109, "cn-common@1.0.0"),
        ("ev", "440300", "", DAY, "30", 2638, "cn-common@1.0.0"),
        ("ev", "510100", "", DAY, "30", 3988, "cn-common@1.0.0"),
        ("ev", "130000", "", DAY, "30", 1356, "cn-common@1.0.0"),
        ("ev", "540100", "", DAY, "30", 3599, "cn-common@1.0.0"),
        ("ev", "810000", "", DAY, "30", 2205, "cn-common@1.0.0"),
        # electricity, 25 kWh saved
        ("electricity", "110000", "", DAY, "25", 13950, "cn-common@1.0.0"),
        ("electricity", "440300", "", DAY, "25", 11007, "cn-common@1.0.0"),
        ("electricity", "510100", "", DAY, "25", 3510, "cn-common@1.0.0"),
        ("electricity", "130000", "", DAY, "25", 18130, "cn-common@1.0.0"),
        ("electricity", "810000", "", DAY, "25", 13415, "cn-common@1.0.0"),
        # recycling, by material
        ("recycling", "510100", "paper", DAY, "2.5", 549, "cn-common@1.0.0"),
        ("recycling", "510100", "plastic", DAY, "0.8", 1277, "cn-common@1.0.0"),
        ("recycling", "510100", "metal", DAY, "1.2", 2120, "cn-common@1.0.0"),
        ("recycling", "510100", "glass", DAY, "3", 1738, "cn-common@1.0.0"),
        ("recycling", "510100", "textile", DAY, "2", 7200, "cn-common@1.0.0"),
        # events
        ("paperless", "440300", "", DAY, "3", 72, "cn-common@1.0.0"),
        ("no_cutlery", "510100", "", DAY, "1", 12, "cn-common@1.0.0"),
        ("no_cutlery", "510100", "", DAY, "3", 38, "cn-common@1.0.0"),
    ],
)
def test_worked_examples_of_the_methodology_pages(
    shipped: Catalogue,
    scene: str,
    region: str,
    material: str,
    day: date,
    amount: str,
    grams: int,
    methodology: str,
) -> None:
    """Each example of docs/methodologies/ gives its literal grams under its methodology."""
    q = shipped.quantify(scene, region, material, day)
    assert q is not None
    assert q.methodology == methodology
    assert q.reduction_for(Decimal(amount)) == grams


# The per-unit table of docs/methodologies/README.md: (scene, material) → reductions per unit
# in Beijing 110000, Shenzhen 440300, Chengdu 510100 and a place on the national values
# (香港 810000), for a record of 2025-06-01.
OVERVIEW = {
    ("walk", ""): ("43", "43", "43", "43"),
    ("bike", ""): ("43", "43", "43", "43"),
    ("bus", ""): ("215.8", "26.9", "24", "24"),
    ("metro", ""): ("210.6", "46.7", "46.7", "46.7"),
    ("ev", ""): ("70.3", "87.955", "132.94", "73.51"),
    ("electricity", ""): ("558", "440.3", "140.4", "536.6"),
    ("recycling", "paper"): ("219.72883",) * 4,
    ("recycling", "plastic"): ("1597.10826",) * 4,
    ("recycling", "metal"): ("1766.69594",) * 4,
    ("recycling", "glass"): ("579.57713",) * 4,
    ("recycling", "textile"): ("3600",) * 4,
    ("paperless", ""): ("24",) * 4,
    ("no_cutlery", ""): ("12.8878586",) * 4,
}
OVERVIEW_REGIONS = ("110000", "440300", "510100", "810000")
# The cells the table names a regional methodology for; every other cell is cn-common's.
OVERVIEW_REGIONAL = {
    ("bus", "110000"): "bj-low-carbon-travel@1.0.0",
    ("metro", "110000"): "bj-low-carbon-travel@1.0.0",
    ("bus", "440300"): "sz-public-transit@1.0.1",
    ("metro", "440300"): "sz-public-transit@1.0.1",
}


@pytest.mark.parametrize(
    ("scene", "region", "material", "per_unit"),
    [
        (scene, region, material, value)
        for (scene, material), values in OVERVIEW.items()
        for region, value in zip(OVERVIEW_REGIONS, values, strict=True)
    ],
)
def test_reductions_per_unit_of_the_overview_table(
    shipped: Catalogue, scene: str, region: str, material: str, per_unit: str
) -> None:
    """Every cell of the per-unit table of docs/methodologies/README.md, exact to the last
    digit, under the methodology the table names."""
    q = shipped.quantify(scene, region, material, DAY)
    assert q is not None
    assert q.reduction_g == Decimal(per_unit)
    assert q.methodology == OVERVIEW_REGIONAL.get((scene, region), "cn-common@1.0.0")


def test_the_trace_names_the_factor_and_the_fallback_taken(shipped: Catalogue) -> None:
    """EV in Lhasa: Tibet has no grid row, so the Southwest grid's 2022 row is used."""
    q = shipped.quantify("ev", "540100", "", DAY)
    assert q is not None
    grid = next(n for n in q.names if n.name == "grid_ef")
    assert grid.factor_id == "grid_ef/CN-GRID-SOUTHWEST/2022"
    assert (grid.region_asked, grid.region_used, grid.region_level) == (
        "540100",
        "CN-GRID-SOUTHWEST",
        "grid_region",
    )
    assert grid.value == Decimal("226.8")
    fuel = next(n for n in q.names if n.name == "fuel_l_per_km")
    assert (fuel.factor_id, fuel.value, fuel.evidence) == ("", Decimal("0.07"), "ESTIMATE")
    assert (q.baseline_g, q.project_g, q.reduction_g) == (
        Decimal("154.00"),
        Decimal("34.020"),
        Decimal("119.980"),
    )


def test_a_pinned_factor_year_keeps_shenzhen_on_its_2021_values(shipped: Catalogue) -> None:
    """sz-public-transit uses factor_year 2021: the 440300 rows of 2021."""
    q = shipped.quantify("bus", "440300", "", DAY)
    assert q is not None
    assert [n.factor_id for n in q.names] == ["bus_reduction_citymix/440300/2021"]
    metro = shipped.quantify("metro", "440300", "", DAY)
    assert metro is not None
    assert [n.factor_id for n in metro.names] == ["metro_reduction_citymix/440300/2021"]


def test_a_calculation_pinned_to_its_version_is_what_quantified_it(shipped: Catalogue) -> None:
    """Computing by a methodology version gives the calculation its selection gave on any day
    it was in force; a version never computes a scene it does not cover."""
    for scene, region, material in [
        ("bus", "440300", ""),
        ("bus", "110105", ""),
        ("recycling", "510100", "paper"),
    ]:
        q = shipped.quantify(scene, region, material, DAY)
        assert q is not None
        m = shipped.get(q.methodology)
        assert shipped.calculate(m, scene, region, material) == q
    with pytest.raises(MethodologyError, match="does not cover scene recycling"):
        shipped.calculate(shipped.get("sz-public-transit@1.0.0"), "recycling", "440300", "paper")


@pytest.mark.parametrize(
    ("ref", "scene", "amount", "grams", "factor_id"),
    [
        # The two versions side by side, docs/methodologies/sz-public-transit.md
        ("sz-public-transit@1.0.0", "metro", "5", 234, SZ_METRO_LAUNCH),
        ("sz-public-transit@1.0.1", "metro", "5", 233, SZ_METRO_REPORTED),
        ("sz-public-transit@1.0.0", "metro", "12.3", 575, SZ_METRO_LAUNCH),
        ("sz-public-transit@1.0.1", "metro", "12.3", 574, SZ_METRO_REPORTED),
        ("sz-public-transit@1.0.0", "metro", "0.9999", 46, SZ_METRO_LAUNCH),
        ("sz-public-transit@1.0.1", "metro", "0.9999", 46, SZ_METRO_REPORTED),
        ("sz-public-transit@1.0.0", "bus", "5", 134, "bus_reduction_citymix/440300/2021"),
        ("sz-public-transit@1.0.1", "bus", "5", 134, "bus_reduction_citymix/440300/2021"),
    ],
)
def test_worked_examples_of_each_shenzhen_version(
    shipped: Catalogue, ref: str, scene: str, amount: str, grams: int, factor_id: str
) -> None:
    """Each version computes the page's grams whatever the catalogue selects today, and its
    trace names the factor row it used."""
    q = shipped.calculate(shipped.get(ref), scene, "440300", "")
    assert q.methodology == ref
    assert [n.factor_id for n in q.names] == [factor_id]
    assert q.reduction_for(Decimal(amount)) == grams


def test_a_5_km_shenzhen_metro_ride_under_each_version(shipped: Catalogue) -> None:
    """5 × 46.8 = 234 g under 1.0.0 (the launch figure); 5 × 46.7 = 233.5 → 233 g under 1.0.1
    (the 2022-09 report): the correction takes 1 g from the ride."""
    launch = shipped.calculate(shipped.get("sz-public-transit@1.0.0"), "metro", "440300", "")
    reported = shipped.calculate(shipped.get("sz-public-transit@1.0.1"), "metro", "440300", "")
    km = Decimal(5)
    assert (launch.baseline_g, launch.project_g, launch.reduction_g) == (
        Decimal("46.8"),
        Decimal(0),
        Decimal("46.8"),
    )
    assert (reported.baseline_g, reported.project_g, reported.reduction_g) == (
        Decimal("46.7"),
        Decimal(0),
        Decimal("46.7"),
    )
    assert km * launch.reduction_g == Decimal("234.0")
    assert km * reported.reduction_g == Decimal("233.5")
    assert (reduction_for(km, launch.reduction_g), launch.reduction_for(km)) == (234, 234)
    assert (reduction_for(km, reported.reduction_g), reported.reduction_for(km)) == (233, 233)
    (old,) = launch.names
    (new,) = reported.names
    assert (old.name, old.factor_id, old.value, old.evidence, old.region_used) == (
        "metro_reduction_citymix",
        SZ_METRO_LAUNCH,
        Decimal("46.8"),
        "FOUND",
        "440300",
    )
    assert "低碳星球" in old.source
    assert (new.name, new.factor_id, new.value, new.evidence, new.region_used) == (
        "metro_reduction_citymix",
        SZ_METRO_REPORTED,
        Decimal("46.7"),
        "FOUND",
        "440300",
    )
    assert "深圳商报 2022-09-23" in new.source
    # What a stored calculation names re-derives it: the superseded version's own edition.
    assert (
        shipped.calculate(
            shipped.get("sz-public-transit@1.0.0"),
            "metro",
            "440300",
            "",
            {"metro_reduction_citymix": SZ_METRO_LAUNCH},
        )
        == launch
    )


def test_the_beijing_transport_commission_s_22_km_day(shipped: Catalogue) -> None:
    """22 km by metro instead of car under bj-low-carbon-travel@1.0.0 in 110000:
    (272 − 61.4) × 22 = 4633.2 → 4633 g, the 4.63 kg the source says is saved (car 5.98 kg,
    metro 1.35 kg)."""
    q = shipped.calculate(shipped.get("bj-low-carbon-travel@1.0.0"), "metro", "110000", "")
    assert q == shipped.quantify("metro", "110000", "", DAY)
    assert (q.baseline_g, q.project_g, q.reduction_g) == (
        Decimal(272),
        Decimal("61.4"),
        Decimal("210.6"),
    )
    km = Decimal(22)
    assert km * q.baseline_g == Decimal(5984)  # 5.98 kg by car
    assert km * q.project_g == Decimal("1350.8")  # 1.35 kg by metro
    assert km * q.reduction_g == Decimal("4633.2")
    assert q.reduction_for(km) == 4633  # 4.63 kg saved
    assert [(n.name, n.factor_id) for n in q.names] == [
        ("private_car_g_per_pkm", ""),
        ("metro_g_per_pkm", ""),
    ]


@pytest.mark.parametrize(
    ("scene", "region", "amounts", "credits", "reasons"),
    [
        # cn-common: an 8 km walk in Beijing computes 344 g, capped at 296 g for the day
        ("walk", "110000", ["8"], [296], ["capped"]),
        # bj-low-carbon-travel: the sixth metro ride of a day in Beijing
        ("metro", "110000", ["12.3"] * 6, [2590] * 5 + [0], [""] * 5 + ["capped"]),
        # cn-common: 3 separate no_cutlery records earn 12 g each, 36 g
        ("no_cutlery", "510100", ["1"] * 3, [12] * 3, [""] * 3),
    ],
)
def test_worked_examples_of_the_caps(
    shipped: Catalogue,
    scene: str,
    region: str,
    amounts: list[str],
    credits: list[int],
    reasons: list[str],
) -> None:
    """The capped rows of the methodology pages: one citizen's records of one day, settled in
    receive order under the caps of the methodology that quantified them."""
    q = shipped.quantify(scene, region, "", DAY)
    assert q is not None
    caps = caps_of(shipped.get(q.methodology).scenes[scene])
    decisions = list(
        settle(
            Candidate(
                seq=i,
                key=("amap", f"r{i}"),
                digest=f"d{i}",
                citizen="13800138000",
                scene=scene,
                day=DAY,
                computed_g=q.reduction_for(Decimal(amount)),
                methodology=q.methodology,
                caps=caps,
            )
            for i, amount in enumerate(amounts, start=1)
        )
    )
    assert [d.status for d in decisions] == [Status.CREDITED] * len(amounts)
    assert [d.reduction_g for d in decisions] == credits
    assert [d.reason for d in decisions] == reasons


# Versions over time -----------------------------------------------------------------------


SZ_0 = "sz-public-transit@1.0.0"
SZ_1 = "sz-public-transit@1.0.1"


def _catalogue(
    shipped: Catalogue, *, drop: Set[str] = frozenset(), add: Sequence[Methodology] = ()
) -> Catalogue:
    """The shipped catalogue without the versions `drop` names, with `add`."""
    kept = [m for m in shipped.methodologies if m.ref not in drop]
    return Catalogue([*kept, *add], shipped.factors, shipped.regions)


def _copy_shipped(tmp_path: Path) -> Path:
    folder = tmp_path / "methodologies"
    shutil.copytree(shipped_folder(), folder)
    return folder


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, old
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_the_correction_takes_every_day_of_the_version_it_corrects(shipped: Catalogue) -> None:
    """sz-public-transit@1.0.1 corrects 1.0.0 retroactively: it quantifies Shenzhen's bus and
    metro on every day from 1.0.0's first, 2021-12-16; 1.0.0 still calculates its 46.8."""
    old = shipped.get("sz-public-transit@1.0.0")
    new = shipped.get("sz-public-transit@1.0.1")
    assert (old.status, old.supersedes, old.retroactive) == (
        MethodologyStatus.SUPERSEDED,
        "",
        False,
    )
    assert (new.status, new.supersedes, new.retroactive) == (MethodologyStatus.TRIAL, "1.0.0", True)
    assert new.superseded_ref == old.ref
    assert (old.factor_pins, new.factor_pins) == ((SZ_METRO_LAUNCH,), (SZ_METRO_REPORTED,))
    assert old.effective_from == new.effective_from == date(2021, 12, 16)
    assert shipped.corrected == frozenset({old.ref})
    for scene in ("bus", "metro"):
        assert shipped.select(scene, "440300", date(2021, 12, 15)) is None
    day = date(2021, 12, 16)
    while day <= date(2027, 12, 31):
        for scene in ("bus", "metro"):
            assert shipped.select(scene, "440300", day) == new, (scene, day)
        assert old.in_force(day)  # its own dates still cover the day ...
        assert not shipped.in_force(old, day)  # ... but its correction takes it
        assert shipped.in_force(new, day)
        day += timedelta(days=1)
    assert shipped.calculate(old, "metro", "440300", "").reduction_g == Decimal("46.8")
    assert shipped.calculate(new, "metro", "440300", "").reduction_g == Decimal("46.7")


def test_the_lineage_of_a_methodology(shipped: Catalogue) -> None:
    """Versions oldest first by number; what a version supersedes, nearest first."""
    assert [m.ref for m in shipped.lineage("sz-public-transit")] == [
        "sz-public-transit@1.0.0",
        "sz-public-transit@1.0.1",
    ]
    assert [m.ref for m in shipped.lineage("cn-common")] == ["cn-common@1.0.0"]
    assert shipped.lineage("nothing") == []
    assert [m.ref for m in shipped.superseded_by("sz-public-transit@1.0.1")] == [
        "sz-public-transit@1.0.0"
    ]
    assert shipped.superseded_by("sz-public-transit@1.0.0") == []
    assert shipped.superseded_by("cn-common@1.0.0") == []
    with pytest.raises(MethodologyError, match=r"no methodology sz-public-transit@9\.9\.9"):
        shipped.superseded_by("sz-public-transit@9.9.9")


def test_a_chain_of_versions_is_followed_to_its_root(shipped: Catalogue) -> None:
    """1.0.2 corrects 1.0.1, which corrects 1.0.0: 1.0.2 supersedes both, nearest first, and
    takes every day."""
    first = shipped.get("sz-public-transit@1.0.0")
    second = dataclasses.replace(
        shipped.get("sz-public-transit@1.0.1"), status=MethodologyStatus.SUPERSEDED
    )
    third = dataclasses.replace(
        second, version="1.0.2", supersedes="1.0.1", status=MethodologyStatus.TRIAL
    )
    catalogue = _catalogue(shipped, drop={second.ref}, add=[second, third])
    assert [m.ref for m in catalogue.superseded_by(third.ref)] == [second.ref, first.ref]
    assert [m.ref for m in catalogue.lineage("sz-public-transit")] == [
        first.ref,
        second.ref,
        third.ref,
    ]
    assert catalogue.corrected == frozenset({first.ref, second.ref})
    assert catalogue.select("metro", "440300", date(2021, 12, 16)) == third


def test_a_forward_revision_keeps_the_days_before_it(tmp_path: Path) -> None:
    """Not retroactive: 1.0.0 ends on 2025-01-01 (`effective_to`) and 1.0.1 starts that day;
    a ride of 2024-12-31 is still 1.0.0's (46.8), one of 2025-01-01 is 1.0.1's (46.7)."""
    folder = _copy_shipped(tmp_path)
    old, new = folder / "sz-public-transit.toml", folder / "sz-public-transit-1.0.1.toml"
    _edit(
        old,
        "effective_from = 2021-12-16\n",
        "effective_from = 2021-12-16\neffective_to = 2025-01-01\n",
    )
    _edit(new, "retroactive = true", "retroactive = false")
    _edit(new, "effective_from = 2021-12-16", "effective_from = 2025-01-01")
    catalogue = load_catalogue(folder)
    assert catalogue.corrected == frozenset()
    before = catalogue.quantify("metro", "440300", "", date(2024, 12, 31))
    after = catalogue.quantify("metro", "440300", "", date(2025, 1, 1))
    assert before is not None
    assert after is not None
    assert (before.methodology, before.reduction_g) == ("sz-public-transit@1.0.0", Decimal("46.8"))
    assert (after.methodology, after.reduction_g) == ("sz-public-transit@1.0.1", Decimal("46.7"))
    first_day = catalogue.select("metro", "440300", date(2021, 12, 16))
    assert first_day is not None
    assert first_day.ref == "sz-public-transit@1.0.0"
    assert date(2025, 1, 1) in catalogue.boundaries()


# Rounding ---------------------------------------------------------------------------------


def unit(reduction: str) -> UnitQuantification:
    return UnitQuantification(
        "m@1", "bus", "110000", "", "km", "", "", Decimal(0), Decimal(0), Decimal(reduction), ()
    )


@pytest.mark.parametrize(
    ("reduction", "amount", "grams"),
    [
        ("215.8", "5.0009", 1079),  # amount floored to 5.000 first
        ("215.8", "5", 1079),
        ("46.7", "0.9999", 46),  # 0.999 × 46.7 = 46.6533 → 46
        ("26.9", "5", 134),  # 134.5 → 134, never 135
        ("215.8", "0.0209", 4),  # 0.020 × 215.8 = 4.316 → 4
        ("215.8", "0.0009", 0),  # below a thousandth: nothing
        ("24", "0", 0),
        ("0", "100", 0),
        ("12.8878586", "3", 38),
        ("219.72883", "2.5", 549),
    ],
)
def test_reduction_for_floors_the_amount_then_the_grams(
    reduction: str, amount: str, grams: int
) -> None:
    """floor(floor_0.001(amount) × ER): both roundings credit less, never more."""
    result = unit(reduction).reduction_for(Decimal(amount))
    assert result == grams
    assert type(result) is int


def test_rounding_the_amount_first_credits_less_than_rounding_once() -> None:
    """2.1419 km of Shenzhen metro: 2.141 × 46.7 = 99.9847 → 99 g, not 2.1419 × 46.7 → 100 g."""
    assert unit("46.7").reduction_for(Decimal("2.1419")) == 99


# ER never negative --------------------------------------------------------------------------

REGIONS = RegionCatalogue(
    [
        Region("110000", "北京市", "province", "110000", "CN-GRID-NORTH"),
        Region("110100", "北京市市辖区", "prefecture", "110000", "CN-GRID-NORTH"),
        Region("120000", "天津市", "province", "120000", "CN-GRID-NORTH"),
        Region("510000", "四川省", "province", "510000", "CN-GRID-SOUTHWEST"),
    ]
)


def factor(key: str, region: str, value: str, year: int = 2022) -> Factor:
    return Factor(
        f"{key}/{region}/{year}", key, region, Decimal(value), "g", year, Evidence.FOUND, "test"
    )


FACTORS = FactorTable(
    [
        factor("car", "CN", "150"),
        factor("bus", "CN", "100"),
        factor("bus", "110000", "200"),
        factor("grid_ef", "CN", "536.6"),
        factor("grid_ef", "CN", "600", 2023),
    ]
)


def methodology(
    mid: str,
    *,
    version: str = "1.0.0",
    status: MethodologyStatus = MethodologyStatus.ACTIVE,
    start: date = date(2024, 1, 1),
    end: date | None = None,
    jurisdiction: tuple[str, ...] = ("CN",),
    scenes: dict[str, tuple[str, str]] | None = None,
    parameters: dict[str, str] | None = None,
    factor_year: int | None = None,
) -> Methodology:
    rules = {
        scene: SceneRule(scene, SCENES[scene].unit, expressions.parse(be), expressions.parse(pe))
        for scene, (be, pe) in (scenes or {"bus": ("car", "bus")}).items()
    }
    params = {
        name: Parameter(name, Decimal(value), "g", Evidence.ESTIMATE, "test")
        for name, value in (parameters or {}).items()
    }
    return Methodology(
        id=mid,
        version=version,
        title=mid,
        title_zh="",
        issuer="test",
        status=status,
        effective_from=start,
        effective_to=end,
        jurisdiction=jurisdiction,
        scenes=rules,
        parameters=params,
        factor_year=factor_year,
    )


def test_a_reduction_is_never_negative() -> None:
    """In Beijing the bus emits more than the car it replaces: ER is 0, not −50."""
    catalogue = Catalogue([methodology("m")], FACTORS, REGIONS)
    q = catalogue.quantify("bus", "110000", "", DAY)
    assert q is not None
    assert (q.baseline_g, q.project_g, q.reduction_g) == (Decimal(150), Decimal(200), Decimal(0))
    assert q.reduction_for(Decimal("12.5")) == 0
    positive = catalogue.quantify("bus", "510000", "", DAY)
    assert positive is not None
    assert positive.reduction_g == Decimal(50)


def test_a_tie_is_broken_conservatively_in_both_formulas() -> None:
    """The same key in BE takes the low value of a tie and in PE the high one."""
    table = FactorTable(
        [
            Factor("k/CN/a", "k", "CN", Decimal(10), "g", 2022, Evidence.FOUND, "a"),
            Factor("k/CN/b", "k", "CN", Decimal(12), "g", 2022, Evidence.FOUND, "b"),
        ]
    )
    catalogue = Catalogue([methodology("m", scenes={"bus": ("k * 2", "k")})], table, REGIONS)
    q = catalogue.quantify("bus", "510000", "", DAY)
    assert q is not None
    assert (q.baseline_g, q.project_g, q.reduction_g) == (Decimal(20), Decimal(12), Decimal(8))


def test_parameters_come_before_factors_of_the_same_name() -> None:
    """A methodology's own constant shadows a factor key."""
    m = methodology("m", parameters={"car": "300"})
    q = Catalogue([m], FACTORS, REGIONS).quantify("bus", "510000", "", DAY)
    assert q is not None
    assert q.baseline_g == Decimal(300)


def test_the_pinned_factor_year_limits_the_rows_a_version_sees() -> None:
    """factor_year 2022 uses the 2022 grid row; without a pin the 2023 row wins."""
    scenes = {"electricity": ("grid_ef", "0")}
    pinned = Catalogue(
        [methodology("m", scenes=scenes, factor_year=2022)], FACTORS, REGIONS
    ).quantify("electricity", "510000", "", DAY)
    free = Catalogue([methodology("m", scenes=scenes)], FACTORS, REGIONS).quantify(
        "electricity", "510000", "", DAY
    )
    assert pinned is not None
    assert free is not None
    assert (pinned.reduction_g, free.reduction_g) == (Decimal("536.6"), Decimal(600))


def test_a_factor_missing_for_a_region_is_an_error_not_a_zero() -> None:
    """A methodology that names a key must reach a row of it from every region it covers."""
    table = FactorTable([factor("car", "CN", "150"), factor("bus", "110000", "100")])
    catalogue = Catalogue([methodology("m")], table, REGIONS)
    assert catalogue.quantify("bus", "110100", "", DAY) is not None
    with pytest.raises(FactorNotFoundError, match="510000"):
        catalogue.quantify("bus", "510000", "", DAY)
    bus_problems = [p for p in catalogue.check_coverage(DAY) if "scene bus" in p]
    assert bus_problems == [
        "m@1.0.0, scene bus, region 120000: no factor 'bus' for 120000 → CN-GRID-NORTH → CN",
        "m@1.0.0, scene bus, region 510000: no factor 'bus' for 510000 → CN-GRID-SOUTHWEST → CN",
    ]


# Loading a catalogue ----------------------------------------------------------------------


def test_two_usable_versions_overlapping_on_a_scene_and_place_are_refused() -> None:
    """Which one would quantify a Beijing bus ride in 2025 is ambiguous: a load error."""
    a = methodology("bj-a", jurisdiction=("110000",), start=date(2024, 1, 1))
    b = methodology("bj-b", jurisdiction=("110000", "120000"), start=date(2025, 1, 1))
    with pytest.raises(MethodologyError, match=r"bj-a@1\.0\.0 and bj-b@1\.0\.0"):
        Catalogue([a, b], FACTORS, REGIONS)


def test_a_version_that_ends_the_day_the_next_starts_does_not_overlap() -> None:
    """`effective_to` is exclusive: 1.0.0 until 2025-01-01, 1.1.0 from that day."""
    old = methodology(
        "m", status=MethodologyStatus.SUPERSEDED, end=date(2025, 1, 1), parameters={"car": "300"}
    )
    new = methodology("m", version="1.1.0", start=date(2025, 1, 1))
    catalogue = Catalogue([old, new], FACTORS, REGIONS)
    before = catalogue.quantify("bus", "510000", "", date(2024, 12, 31))
    after = catalogue.quantify("bus", "510000", "", date(2025, 1, 1))
    assert before is not None
    assert after is not None
    assert (before.methodology, before.reduction_g) == ("m@1.0.0", Decimal(200))
    assert (after.methodology, after.reduction_g) == ("m@1.1.0", Decimal(50))


def test_an_overlap_by_one_day_is_refused() -> None:
    """Ending on 2025-01-02 while the next starts on 2025-01-01 leaves one ambiguous day."""
    old = methodology("m", end=date(2025, 1, 2))
    new = methodology("m", version="1.1.0", start=date(2025, 1, 1))
    with pytest.raises(MethodologyError):
        Catalogue([old, new], FACTORS, REGIONS)


def test_overlapping_versions_of_different_scenes_or_places_are_not_ambiguous() -> None:
    """Bus in CN and metro in CN, or bus in CN and bus in 110000: precedence decides."""
    bus = methodology("bus", scenes={"bus": ("car", "bus")})
    metro = methodology("metro", scenes={"metro": ("car", "bus")})
    beijing = methodology("bj", jurisdiction=("110000",), scenes={"bus": ("car", "0")})
    catalogue = Catalogue([bus, metro, beijing], FACTORS, REGIONS)
    assert catalogue.select("bus", "110100", DAY).ref == "bj@1.0.0"  # type: ignore[union-attr]
    assert catalogue.select("bus", "510000", DAY).ref == "bus@1.0.0"  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [MethodologyStatus.DRAFT, MethodologyStatus.WITHDRAWN])
def test_draft_and_withdrawn_versions_never_quantify_nor_conflict(
    status: MethodologyStatus,
) -> None:
    """An unusable version may overlap a usable one; it is never selected."""
    usable = methodology("m")
    other = methodology("m", version="2.0.0", status=status, parameters={"car": "999"})
    catalogue = Catalogue([usable, other], FACTORS, REGIONS)
    assert catalogue.select("bus", "510000", DAY).ref == "m@1.0.0"  # type: ignore[union-attr]
    alone = Catalogue([other], FACTORS, REGIONS)
    assert alone.select("bus", "510000", DAY) is None


def test_a_trial_version_quantifies() -> None:
    """Trial versions are usable, like Shenzhen's public-transit methodology."""
    catalogue = Catalogue([methodology("m", status=MethodologyStatus.TRIAL)], FACTORS, REGIONS)
    assert catalogue.select("bus", "510000", DAY) is not None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"scenes": {"bus": ("car", "unknown_key")}}, "unknown_key"),
        ({"jurisdiction": ("999999",)}, "999999"),
    ],
)
def test_a_methodology_naming_what_does_not_exist_is_refused(
    change: dict[str, object], message: str
) -> None:
    """Unknown formula names and unknown jurisdictions are load errors."""
    with pytest.raises(MethodologyError, match=message):
        Catalogue([methodology("m", **change)], FACTORS, REGIONS)  # type: ignore[arg-type]


def test_a_version_defined_twice_is_refused() -> None:
    """Two files with one id@version."""
    with pytest.raises(MethodologyError):
        Catalogue([methodology("m"), methodology("m", start=date(2030, 1, 1))], FACTORS, REGIONS)


# Lineage ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "step"),
    [
        ("1.0.0", "1.0.1", Change.PATCH),
        ("1.0.1", "1.0.10", Change.PATCH),
        ("1.0.1", "1.1.0", Change.MINOR),
        ("1.9.3", "1.10.0", Change.MINOR),
        ("1.0.0", "1.1.5", Change.MINOR),
        ("1.2.0", "2.0.0", Change.MAJOR),
        ("1.2.3", "3.0.1", Change.MAJOR),
        ("1.0.0", "1.0.0", None),
        ("1.0.1", "1.0.0", None),
        ("1.10.0", "1.9.9", None),
        ("2.0.0", "1.9.9", None),
    ],
)
def test_the_step_between_two_version_numbers(old: str, new: str, step: Change | None) -> None:
    """The highest part that grows is the step; a number not later is no step."""
    assert step_of(old, new) is step


@pytest.mark.parametrize("version", ["1.0", "1.0.0.0", "v1.0.0", "1.0.0-rc1", "1.x.0", ""])
def test_a_version_number_is_major_minor_patch(version: str) -> None:
    with pytest.raises(MethodologyError, match=r"is not MAJOR\.MINOR\.PATCH"):
        semver(version)
    assert semver("1.10.2") == (1, 10, 2)


def _rule(m: Methodology, scene: str, **changes: Any) -> Methodology:
    """`m` with its rule for `scene` changed."""
    return dataclasses.replace(
        m, scenes={**m.scenes, scene: dataclasses.replace(m.scenes[scene], **changes)}
    )


def _walk_added(m: Methodology, shipped: Catalogue) -> Methodology:
    walk = shipped.get("cn-common@1.0.0").scenes["walk"]
    return dataclasses.replace(m, scenes={**m.scenes, "walk": walk})


def _bus_dropped(m: Methodology) -> Methodology:
    return dataclasses.replace(m, scenes={"metro": m.scenes["metro"]})


Edit = Callable[[Methodology, Catalogue], Methodology]
CHANGES: list[tuple[str, str, Edit, Change]] = [
    # patch: corrected values
    ("nothing", SZ_0, lambda m, c: m, Change.PATCH),
    ("the shipped correction: another metro pin", SZ_0, lambda m, c: c.get(SZ_1), Change.PATCH),
    ("a factor pin", SZ_1, lambda m, c: dataclasses.replace(m, factor_pins=()), Change.PATCH),
    (
        "a parameter",
        "bj-low-carbon-travel@1.0.0",
        lambda m, c: dataclasses.replace(
            m,
            parameters={
                **m.parameters,
                "metro_g_per_pkm": dataclasses.replace(
                    m.parameters["metro_g_per_pkm"], value=Decimal("61.36")
                ),
            },
        ),
        Change.PATCH,
    ),
    (
        "a cap",
        SZ_1,
        lambda m, c: _rule(m, "metro", caps=(Cap("day", max_count=6),)),
        Change.PATCH,
    ),
    ("a factor year", SZ_1, lambda m, c: dataclasses.replace(m, factor_year=2022), Change.PATCH),
    # minor: new scenes or places
    ("a scene added", SZ_1, _walk_added, Change.MINOR),
    (
        "a place added",
        SZ_1,
        lambda m, c: dataclasses.replace(m, jurisdiction=("440300", "440100")),
        Change.MINOR,
    ),
    (
        "a scene and a place added, a cap changed",
        SZ_1,
        lambda m, c: dataclasses.replace(
            _rule(_walk_added(m, c), "bus", caps=()), jurisdiction=("440300", "440100")
        ),
        Change.MINOR,
    ),
    # major: a formula or unit changed, a scene or place dropped
    (
        "a baseline formula",
        SZ_1,
        lambda m, c: _rule(m, "metro", baseline=expressions.parse("metro_reduction_citymix * 2")),
        Change.MAJOR,
    ),
    (
        "a project formula",
        "bj-low-carbon-travel@1.0.0",
        lambda m, c: _rule(m, "bus", project=expressions.parse("metro_g_per_pkm")),
        Change.MAJOR,
    ),
    ("a unit", SZ_1, lambda m, c: _rule(m, "bus", unit="count"), Change.MAJOR),
    ("a scene dropped", SZ_1, lambda m, c: _bus_dropped(m), Change.MAJOR),
    (
        "a place dropped",
        "bj-low-carbon-travel@1.0.0",
        lambda m, c: dataclasses.replace(m, jurisdiction=("110000", "120000")),
        Change.MAJOR,
    ),
    (
        "a scene dropped, another added",
        SZ_1,
        lambda m, c: _walk_added(_bus_dropped(m), c),
        Change.MAJOR,
    ),
    (
        "a place replaced by another",
        SZ_1,
        lambda m, c: dataclasses.replace(m, jurisdiction=("440100",)),
        Change.MAJOR,
    ),
]


@pytest.mark.parametrize(
    ("ref", "edit", "change"),
    [pytest.param(ref, edit, change, id=name) for name, ref, edit, change in CHANGES],
)
def test_the_change_between_two_versions(
    shipped: Catalogue, ref: str, edit: Edit, change: Change
) -> None:
    """Patch for corrected values (a factor pin, a parameter, a cap), minor for added scenes or
    places, major for a changed formula or unit or a scene or place dropped."""
    old = shipped.get(ref)
    assert change_between(old, edit(old, shipped)) is change


def _successor(shipped: Catalogue, **changes: Any) -> Catalogue:
    """The shipped catalogue with sz-public-transit@1.0.1 changed."""
    new = dataclasses.replace(shipped.get(SZ_1), **changes)
    return _catalogue(shipped, drop={SZ_1}, add=[new])


REFUSALS: list[tuple[str, Callable[[Catalogue], Catalogue], str]] = [
    (
        "a patch step that changes a formula",
        lambda c: _catalogue(
            c,
            drop={SZ_1},
            add=[
                _rule(
                    c.get(SZ_1), "metro", baseline=expressions.parse("metro_reduction_citymix * 2")
                )
            ],
        ),
        r"sz-public-transit@1\.0\.1: a patch step from sz-public-transit@1\.0\.0, but the "
        r"change is major",
    ),
    (
        "a patch step that adds a scene",
        lambda c: _catalogue(c, drop={SZ_1}, add=[_walk_added(c.get(SZ_1), c)]),
        r"sz-public-transit@1\.0\.1: a patch step from sz-public-transit@1\.0\.0, but the change "
        r"is minor",
    ),
    (
        "a minor step that drops a scene",
        lambda c: _catalogue(
            c,
            drop={SZ_0, SZ_1},
            add=[
                dataclasses.replace(c.get(SZ_0), effective_to=date(2025, 1, 1)),
                dataclasses.replace(
                    _bus_dropped(c.get(SZ_1)),
                    version="1.1.0",
                    retroactive=False,
                    effective_from=date(2025, 1, 1),
                ),
            ],
        ),
        r"sz-public-transit@1\.1\.0: a minor step from sz-public-transit@1\.0\.0, but the "
        r"change is major",
    ),
    (
        "a correction that is a minor step",
        lambda c: _successor(c, version="1.1.0"),
        r"sz-public-transit@1\.1\.0: a correction is a patch, not a minor step",
    ),
    (
        "a correction that is a major step",
        lambda c: _successor(c, version="2.0.0"),
        r"sz-public-transit@2\.0\.0: a correction is a patch, not a major step",
    ),
    (
        "a correction from another day than the superseded version's first",
        lambda c: _successor(c, effective_from=date(2022, 9, 23)),
        r"sz-public-transit@1\.0\.1: a correction takes effect on sz-public-transit@1\.0\.0's "
        r"first day, 2021-12-16",
    ),
    (
        "a superseded version whose status is not superseded",
        lambda c: _catalogue(
            c,
            drop={SZ_0},
            add=[dataclasses.replace(c.get(SZ_0), status=MethodologyStatus.TRIAL)],
        ),
        r"sz-public-transit@1\.0\.0: superseded by sz-public-transit@1\.0\.1, but its status "
        r"is trial",
    ),
    (
        "a pinned factor id that does not exist",
        lambda c: _successor(c, factor_pins=("metro_reduction_citymix/440300/2022",)),
        r"sz-public-transit@1\.0\.1: pinned factor metro_reduction_citymix/440300/2022 is not "
        r"in factors\.csv",
    ),
    (
        "retroactive without superseding",
        lambda c: _successor(c, supersedes=""),
        r"sz-public-transit@1\.0\.1: retroactive, but supersedes no version",
    ),
    (
        "superseding a version not in the catalogue",
        lambda c: _successor(c, supersedes="0.9.0"),
        r"supersedes sz-public-transit@0\.9\.0, not in the catalogue",
    ),
    (
        "superseding a later version",
        lambda c: _successor(c, version="0.9.0"),
        r"sz-public-transit@0\.9\.0: supersedes sz-public-transit@1\.0\.0, not an earlier version",
    ),
    (
        "one version superseded by two",
        lambda c: _catalogue(c, add=[dataclasses.replace(c.get(SZ_1), version="1.0.2")]),
        "a version is superseded by two versions",
    ),
    (
        "a malformed version number",
        lambda c: _successor(c, version="1.0.1a"),
        r"'1\.0\.1a' is not MAJOR\.MINOR\.PATCH",
    ),
]


@pytest.mark.parametrize(
    ("build", "message"),
    [pytest.param(build, message, id=name) for name, build, message in REFUSALS],
)
def test_a_bad_lineage_is_refused(
    shipped: Catalogue, build: Callable[[Catalogue], Catalogue], message: str
) -> None:
    """The catalogue refuses to load a lineage it could not apply as written."""
    with pytest.raises(MethodologyError, match=message):
        build(shipped)


@pytest.mark.parametrize(
    ("file", "old", "new", "message"),
    [
        (
            "sz-public-transit-1.0.1.toml",
            'version = "1.0.1"',
            'version = "1.1.0"',
            "a correction is a patch, not a minor step",
        ),
        (
            "sz-public-transit-1.0.1.toml",
            "effective_from = 2021-12-16",
            "effective_from = 2022-09-23",
            "a correction takes effect on sz-public-transit@1.0.0's first day, 2021-12-16",
        ),
        (
            "sz-public-transit.toml",
            'status = "superseded"',
            'status = "trial"',
            "superseded by sz-public-transit@1.0.1, but its status is trial",
        ),
        (
            "sz-public-transit-1.0.1.toml",
            'factors = ["metro_reduction_citymix/440300/2021"]',
            'factors = ["metro_reduction_citymix/440300/2020"]',
            "pinned factor metro_reduction_citymix/440300/2020 is not in factors.csv",
        ),
        (
            "sz-public-transit-1.0.1.toml",
            'supersedes = "1.0.0"\n',
            "",
            "retroactive, but supersedes no version",
        ),
        (
            "sz-public-transit-1.0.1.toml",
            "retroactive = true",
            'retroactive = "yes"',
            "retroactive is true or false, not 'yes'",
        ),
        (
            "sz-public-transit-1.0.1.toml",
            '[scenes.metro]\nunit = "km"\nbaseline = "metro_reduction_citymix"',
            '[scenes.metro]\nunit = "km"\nbaseline = "metro_reduction_citymix * 2"',
            "a patch step from sz-public-transit@1.0.0, but the change is major",
        ),
    ],
)
def test_a_bad_lineage_in_the_files_is_refused(
    tmp_path: Path, file: str, old: str, new: str, message: str
) -> None:
    """The TOML keys `supersedes`, `retroactive` and `factors`, checked as the catalogue loads."""
    folder = _copy_shipped(tmp_path)
    assert {m.ref for m in load_catalogue(folder).methodologies} >= {SZ_0, SZ_1}
    _edit(folder / file, old, new)
    with pytest.raises(MethodologyError, match=re.escape(message)):
        load_catalogue(folder)
