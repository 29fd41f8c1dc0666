"""GB/T 2260 regions and the fallback chain used to find emission factors.

A record's `region` is a province or prefecture code. Factors and methodologies are found by
walking from the most specific to the most general place:
prefecture (440300) → province (440000) → grid region (CN-GRID-SOUTH) → country (CN).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

NATIONAL = "CN"


@dataclass(frozen=True, slots=True)
class Region:
    """One administrative division.

    Attributes:
        code: 6-digit GB/T 2260 code.
        name: Chinese name.
        level: `province` or `prefecture`.
        province: code of the province it belongs to (its own code for a province).
        grid_region: code of its regional power grid (`CN-GRID-…`), empty where none applies.
    """

    code: str
    name: str
    level: str
    province: str
    grid_region: str


class RegionCatalogue:
    """The set of valid region codes and each one's fallback chain."""

    def __init__(self, regions: Iterable[Region]) -> None:
        self._regions = {r.code: r for r in regions}

    def __contains__(self, code: object) -> bool:
        return code in self._regions

    def __len__(self) -> int:
        return len(self._regions)

    def get(self, code: str) -> Region | None:
        """Return the region with this code, or None."""
        return self._regions.get(code)

    def codes(self) -> list[str]:
        """Return every valid code, sorted."""
        return sorted(self._regions)

    def chain(self, code: str) -> tuple[str, ...]:
        """Return the fallback chain of a region, most specific first, ending with `CN`.

        Unknown codes fall back to the country only.
        """
        region = self._regions.get(code)
        if region is None:
            return (NATIONAL,)
        chain = [region.code]
        if region.province != region.code:
            chain.append(region.province)
        if region.grid_region:
            chain.append(region.grid_region)
        chain.append(NATIONAL)
        return tuple(chain)

    def level_of(self, place: str) -> str:
        """Name the level of a place in a fallback chain: prefecture, province, grid or national."""
        if place == NATIONAL:
            return "national"
        if place.startswith("CN-GRID-"):
            return "grid_region"
        region = self._regions.get(place)
        return region.level if region else "unknown"
