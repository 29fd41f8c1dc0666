"""Emission factors with their provenance, and how one is chosen for a place.

A factor is a value in grams of CO2e per unit (per passenger-km, per kWh, per kg, per event)
for one key and one place. Choosing one walks the region's fallback chain and stops at the first
place that has the key; among that place's rows it takes the latest data year (not later than a
methodology's pinned year), and on a tie the conservative value.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from puhui.domain.errors import FactorNotFoundError


class Evidence(StrEnum):
    """How well a value is supported: found in a source, derived from found values, or estimated."""

    FOUND = "FOUND"
    DERIVED = "DERIVED"
    ESTIMATE = "ESTIMATE"


class Prefer(StrEnum):
    """Which of two equally recent values is the conservative one for the caller."""

    LOW = "low"  # a baseline or a reduction factor: the smaller one credits less
    HIGH = "high"  # a project emission: the larger one credits less


@dataclass(frozen=True, slots=True)
class Factor:
    """One emission factor.

    Attributes:
        factor_id: stable identifier, e.g. `grid_ef/440000/2022`.
        key: what it measures, e.g. `grid_ef` (g CO2 per kWh of grid electricity).
        region: GB/T 2260 code, grid region `CN-GRID-…`, or `CN`.
        value: grams of CO2e per unit, exact.
        unit: e.g. `gCO2/kWh`, `gCO2e/pkm`.
        data_year: the year the value describes.
        evidence: FOUND, DERIVED or ESTIMATE.
        source: where it comes from (document, publisher, date).
        derivation: for DERIVED and ESTIMATE values, the calculation or assumption.
    """

    factor_id: str
    key: str
    region: str
    value: Decimal
    unit: str
    data_year: int
    evidence: Evidence
    source: str
    derivation: str = ""


@dataclass(frozen=True, slots=True)
class FactorChoice:
    """A factor chosen for a place, with the path taken to find it.

    Attributes:
        factor: the factor used.
        asked: the region the record named.
        chain: the fallback chain walked, most specific first.
    """

    factor: Factor
    asked: str
    chain: tuple[str, ...]

    @property
    def fell_back(self) -> bool:
        """Whether the factor belongs to a more general place than the one asked for."""
        return self.factor.region != self.asked


class FactorTable:
    """All factors of a release, indexed by key and place."""

    def __init__(self, factors: Iterable[Factor]) -> None:
        self._by_key_place: dict[tuple[str, str], list[Factor]] = defaultdict(list)
        self._by_id: dict[str, Factor] = {}
        for f in factors:
            if f.factor_id in self._by_id:
                raise FactorNotFoundError(f"factor id {f.factor_id} appears twice")
            self._by_id[f.factor_id] = f
            self._by_key_place[(f.key, f.region)].append(f)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Factor]:
        return iter(self._by_id.values())

    def keys(self) -> set[str]:
        """Return every factor key in the table."""
        return {key for key, _ in self._by_key_place}

    def by_id(self, factor_id: str) -> Factor:
        """Return a factor by its id."""
        try:
            return self._by_id[factor_id]
        except KeyError:
            raise FactorNotFoundError(f"no factor with id {factor_id}") from None

    def choose(
        self,
        key: str,
        chain: tuple[str, ...],
        *,
        max_year: int | None = None,
        prefer: Prefer = Prefer.LOW,
        pins: frozenset[str] = frozenset(),
    ) -> FactorChoice:
        """Choose the factor for `key` along a region's fallback chain. At a place where one of
        the `pins` (factor ids) has the key, the pinned row is the only one considered.

        Raises:
            FactorNotFoundError: no place in the chain has the key (within `max_year`).
        """
        for place in chain:
            here = self._by_key_place.get((key, place), ())
            pinned = [f for f in here if f.factor_id in pins]
            rows = pinned or [f for f in here if max_year is None or f.data_year <= max_year]
            if rows:
                latest = max(f.data_year for f in rows)
                recent = [f for f in rows if f.data_year == latest]
                pick = min if prefer is Prefer.LOW else max
                factor = pick(recent, key=lambda f: (f.value, f.factor_id))
                return FactorChoice(factor, chain[0], chain)
        raise FactorNotFoundError(f"no factor {key!r} for {' → '.join(chain)}")
