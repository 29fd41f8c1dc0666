"""Worked examples of the methodology catalogue: coverage, selection, quantification, rounding.

The expected grams are those of the pages in docs/methodologies/.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from puhui.adapters.methodology_files import load_catalogue
from puhui.domain import expressions
from puhui.domain.errors import FactorNotFoundError, MethodologyError
from puhui.domain.factors import Evidence, Factor, FactorTable
from puhui.domain.methodology import (
    Catalogue,
    Methodology,
    MethodologyStatus,
    Parameter,
    SceneRule,
    UnitQuantification,
)
from puhui.domain.regions import Region, RegionCatalogue
from puhui.domain.scenes import SCENES

DAY = date(2025, 6, 1)


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
        ("bus", "440300", DAY, "sz-public-transit@1.0.0"),  # Shenzhen's own
        ("metro", "440300", DAY, "sz-public-transit@1.0.0"),
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
        ("bus", "440300", date(2022, 1, 1), "sz-public-transit@1.0.0"),  # before cn-common
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
        ("bus", "440300", "", DAY, "5", 134, "sz-public-transit@1.0.0"),
        ("bus", "510100", "", DAY, "5", 120, "cn-common@1.0.0"),
        ("bus", "440100", "", DAY, "5", 120, "cn-common@1.0.0"),
        ("bus", "110000", "", DAY, "5.0009", 1079, "bj-low-carbon-travel@1.0.0"),
        # metro
        ("metro", "110000", "", DAY, "12.3", 2590, "bj-low-carbon-travel@1.0.0"),
        ("metro", "130100", "", DAY, "12.3", 2590, "bj-low-carbon-travel@1.0.0"),
        ("metro", "110000", "", date(2024, 9, 30), "12.3", 574, "cn-common@1.0.0"),
        ("metro", "440300", "", DAY, "12.3", 574, "sz-public-transit@1.0.0"),
        ("metro", "440300", "", DAY, "0.9999", 46, "sz-public-transit@1.0.0"),
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


@pytest.mark.parametrize(
    ("scene", "region", "material", "per_unit"),
    [
        ("walk", "110000", "", "43"),
        ("bus", "110000", "", "215.8"),
        ("metro", "110000", "", "210.6"),
        ("bus", "440300", "", "26.9"),
        ("metro", "440300", "", "46.7"),
        ("bus", "510100", "", "24"),
        ("ev", "110000", "", "70.3"),
        ("ev", "440300", "", "87.955"),
        ("ev", "510100", "", "132.94"),
        ("ev", "810000", "", "73.51"),
        ("electricity", "440300", "", "440.3"),
        ("electricity", "510100", "", "140.4"),
        ("electricity", "810000", "", "536.6"),
        ("recycling", "510100", "paper", "219.72883"),
        ("recycling", "440300", "plastic", "1597.10826"),
        ("recycling", "110000", "metal", "1766.69594"),
        ("recycling", "510100", "glass", "579.57713"),
        ("recycling", "510100", "textile", "3600"),
        ("paperless", "110000", "", "24"),
        ("no_cutlery", "110000", "", "12.8878586"),
    ],
)
def test_reductions_per_unit_of_the_overview_table(
    shipped: Catalogue, scene: str, region: str, material: str, per_unit: str
) -> None:
    """The per-unit table of docs/methodologies/README.md, exact to the last digit."""
    q = shipped.quantify(scene, region, material, DAY)
    assert q is not None
    assert q.reduction_g == Decimal(per_unit)


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
