"""Worked examples of choosing an emission factor: fallback chain, data year, conservative tie."""

from __future__ import annotations

from decimal import Decimal

import pytest

from puhui.domain.errors import FactorNotFoundError, MethodologyError
from puhui.domain.factors import Evidence, Factor, FactorTable, Prefer
from puhui.domain.regions import Region, RegionCatalogue

REGIONS = RegionCatalogue(
    [
        Region("440000", "广东省", "province", "440000", "CN-GRID-SOUTH"),
        Region("440300", "深圳市", "prefecture", "440000", "CN-GRID-SOUTH"),
        Region("440100", "广州市", "prefecture", "440000", "CN-GRID-SOUTH"),
        Region("450000", "广西壮族自治区", "province", "450000", "CN-GRID-SOUTH"),
        Region("450100", "南宁市", "prefecture", "450000", "CN-GRID-SOUTH"),
        Region("810000", "香港特别行政区", "province", "810000", ""),
    ]
)


def factor(key: str, region: str, value: str, year: int, suffix: str = "") -> Factor:
    return Factor(
        factor_id=f"{key}/{region}/{year}{suffix}",
        key=key,
        region=region,
        value=Decimal(value),
        unit="gCO2/kWh",
        data_year=year,
        evidence=Evidence.FOUND,
        source="test",
    )


GRID = FactorTable(
    [
        factor("grid_ef", "CN", "536.6", 2022),
        factor("grid_ef", "CN-GRID-SOUTH", "386.9", 2022),
        factor("grid_ef", "440000", "440.3", 2022),
        factor("grid_ef", "440300", "420", 2022),
    ]
)


def test_a_prefecture_falls_back_to_province_grid_region_then_country() -> None:
    """440300 → 440000 → CN-GRID-SOUTH → CN; a province skips the prefecture level."""
    assert REGIONS.chain("440300") == ("440300", "440000", "CN-GRID-SOUTH", "CN")
    assert REGIONS.chain("440000") == ("440000", "CN-GRID-SOUTH", "CN")


def test_a_place_without_a_grid_region_falls_back_to_the_country() -> None:
    """Hong Kong has no mainland grid region: 810000 → CN."""
    assert REGIONS.chain("810000") == ("810000", "CN")


def test_an_unknown_code_falls_back_to_the_country_only() -> None:
    """A code not in the catalogue reaches only national rows."""
    assert REGIONS.chain("999999") == ("CN",)


def test_levels_of_the_places_on_a_chain_are_named() -> None:
    """The trace names each level: prefecture, province, grid region, national."""
    levels = [REGIONS.level_of(p) for p in REGIONS.chain("440300")]
    assert levels == ["prefecture", "province", "grid_region", "national"]


@pytest.mark.parametrize(
    ("region", "used", "value"),
    [
        ("440300", "440300", "420"),  # the prefecture's own row
        ("440100", "440000", "440.3"),  # no Guangzhou row: Guangdong's
        ("450100", "CN-GRID-SOUTH", "386.9"),  # no Nanning or Guangxi row: the southern grid's
        ("810000", "CN", "536.6"),  # no grid region: the national row
    ],
)
def test_the_first_place_on_the_chain_with_the_key_wins(region: str, used: str, value: str) -> None:
    """A more general row is used only where every more specific place has none."""
    choice = GRID.choose("grid_ef", REGIONS.chain(region))
    assert choice.factor.region == used
    assert choice.factor.value == Decimal(value)
    assert choice.asked == region
    assert choice.fell_back is (used != region)


def test_a_key_missing_everywhere_on_the_chain_is_an_error() -> None:
    """No silent zero: a missing factor raises, naming the chain walked."""
    with pytest.raises(FactorNotFoundError, match="440300"):
        GRID.choose("bus_reduction_citymix", REGIONS.chain("440300"))


def test_a_missing_factor_is_a_methodology_error() -> None:
    """Callers that handle methodology errors also handle missing factors."""
    assert issubclass(FactorNotFoundError, MethodologyError)


YEARS = FactorTable(
    [
        factor("grid_ef", "440000", "471.5", 2021),
        factor("grid_ef", "440000", "440.3", 2022),
        factor("grid_ef", "440000", "430", 2024),
        factor("grid_ef", "CN", "556.8", 2021),
        factor("grid_ef", "CN", "536.6", 2022),
    ]
)


def test_the_latest_data_year_wins_without_a_pin() -> None:
    """2024 beats 2022 and 2021 at the same place."""
    assert YEARS.choose("grid_ef", ("440000", "CN")).factor.data_year == 2024


@pytest.mark.parametrize(("pin", "year"), [(2025, 2024), (2024, 2024), (2023, 2022), (2021, 2021)])
def test_the_latest_data_year_not_after_the_pinned_year_wins(pin: int, year: int) -> None:
    """A methodology pinned to a year never sees a later row."""
    choice = YEARS.choose("grid_ef", ("440000", "CN"), max_year=pin)
    assert choice.factor.data_year == year
    assert choice.factor.region == "440000"


def test_a_place_with_only_later_rows_than_the_pin_is_passed_over() -> None:
    """Pinned to 2020, Guangdong has no row at all, and neither has the country."""
    with pytest.raises(FactorNotFoundError):
        YEARS.choose("grid_ef", ("440000", "CN"), max_year=2020)
    only_later = FactorTable(
        [factor("grid_ef", "440000", "430", 2024), factor("grid_ef", "CN", "556.8", 2021)]
    )
    assert only_later.choose("grid_ef", ("440000", "CN"), max_year=2022).factor.region == "CN"


def test_the_latest_year_wins_even_over_a_lower_older_value() -> None:
    """Conservativeness breaks ties only: a lower 2021 value does not beat a 2022 one."""
    table = FactorTable([factor("k", "CN", "100", 2021), factor("k", "CN", "200", 2022)])
    assert table.choose("k", ("CN",), prefer=Prefer.LOW).factor.value == Decimal("200")


TIE = FactorTable(
    [
        factor("bus_reduction_citymix", "CN", "26.9", 2024, "a"),
        factor("bus_reduction_citymix", "CN", "24", 2024, "b"),
        factor("bus_reduction_citymix", "CN", "25", 2024, "c"),
    ]
)


def test_a_tie_in_a_baseline_takes_the_low_value() -> None:
    """Two rows of one year and place: in BE the smaller credits less."""
    assert TIE.choose("bus_reduction_citymix", ("CN",), prefer=Prefer.LOW).factor.value == 24


def test_a_tie_in_a_project_emission_takes_the_high_value() -> None:
    """In PE the larger credits less."""
    assert TIE.choose("bus_reduction_citymix", ("CN",), prefer=Prefer.HIGH).factor.value == (
        Decimal("26.9")
    )


def test_the_default_preference_is_low() -> None:
    """Without a preference a tie is broken as for a baseline."""
    assert TIE.choose("bus_reduction_citymix", ("CN",)).factor.value == 24


def test_a_factor_id_may_appear_only_once() -> None:
    """Two rows with one id would make a trace ambiguous."""
    with pytest.raises(MethodologyError):
        FactorTable([factor("k", "CN", "1", 2022), factor("k", "CN", "2", 2022)])


def test_factors_are_found_by_id_and_by_key() -> None:
    """The trace's factor id leads back to the row; keys lists every key once."""
    assert GRID.by_id("grid_ef/440000/2022").value == Decimal("440.3")
    assert GRID.keys() == {"grid_ef"}
    assert len(GRID) == 4
    with pytest.raises(FactorNotFoundError):
        GRID.by_id("grid_ef/440000/1999")
