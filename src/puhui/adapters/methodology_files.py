"""Read the methodology, factor and region files shipped in `puhui/methodologies/`.

Layout of the folder:

- `regions.csv`: GB/T 2260 provinces and prefectures with their province and grid region.
- `factors.csv`: emission factors, one per row (`factor_id,key,region,value,unit,data_year,
  evidence,source,derivation`), values in grams of CO2e per unit.
- `*.toml`: one methodology version per file (format in docs/methodologies/README.md).
"""

from __future__ import annotations

import csv
import os
import tomllib
from collections.abc import Iterator
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

from puhui.domain import expressions
from puhui.domain.errors import MethodologyError
from puhui.domain.factors import Evidence, Factor, FactorTable
from puhui.domain.methodology import (
    Cap,
    Catalogue,
    Methodology,
    MethodologyStatus,
    Parameter,
    SceneRule,
)
from puhui.domain.regions import Region, RegionCatalogue
from puhui.domain.scenes import SCENES


def shipped_folder() -> Path:
    """Return the folder of the methodology files shipped with the package."""
    return Path(str(resources.files("puhui") / "methodologies"))


def load_catalogue(folder: Path | None = None, extra: Path | None = None) -> Catalogue:
    """Load regions, factors and every methodology version from a folder (default: shipped),
    with the regional versions an exchange adds from a folder of its own (`extra`, default
    `PUHUI_METHODOLOGIES` when set): its `*.toml` versions and, if it has one, a `factors.csv`
    of further factors. The catalogue's checks hold for the whole: no version twice, no two
    versions for one scene at one place on one day."""
    folder = folder or shipped_folder()
    if extra is None and folder == shipped_folder() and os.environ.get("PUHUI_METHODOLOGIES"):
        extra = Path(os.environ["PUHUI_METHODOLOGIES"])
    regions = load_regions(folder / "regions.csv")
    factors = list(load_factors(folder / "factors.csv"))
    methodologies = [load_methodology(p) for p in sorted(folder.glob("*.toml"))]
    if extra is not None:
        if not extra.is_dir():
            raise MethodologyError(f"the methodologies folder {extra} does not exist")
        if (extra / "factors.csv").exists():
            factors += load_factors(extra / "factors.csv")
        methodologies += [load_methodology(p) for p in sorted(extra.glob("*.toml"))]
    return Catalogue(methodologies, FactorTable(factors), regions)


def load_regions(path: Path) -> RegionCatalogue:
    """Read `regions.csv`."""
    with path.open(encoding="utf-8", newline="") as f:
        return RegionCatalogue(
            Region(r["code"], r["name"], r["level"], r["province"], r["grid_region"])
            for r in csv.DictReader(f)
        )


def load_factors(path: Path) -> Iterator[Factor]:
    """Read `factors.csv`, checking every value is an exact decimal."""
    with path.open(encoding="utf-8", newline="") as f:
        for line, r in enumerate(csv.DictReader(f), start=2):
            try:
                yield Factor(
                    factor_id=r["factor_id"],
                    key=r["key"],
                    region=r["region"],
                    value=Decimal(r["value"]),
                    unit=r["unit"],
                    data_year=int(r["data_year"]),
                    evidence=Evidence(r["evidence"]),
                    source=r["source"],
                    derivation=r.get("derivation") or "",
                )
            except (KeyError, ValueError, InvalidOperation) as exc:
                raise MethodologyError(f"{path.name}:{line}: {exc}") from None


def load_methodology(path: Path) -> Methodology:
    """Read one methodology TOML file."""
    with path.open("rb") as f:
        data = tomllib.load(f)
    try:
        return parse_methodology(data)
    except (KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise MethodologyError(f"{path.name}: {exc!r}") from None


def parse_methodology(data: dict[str, Any]) -> Methodology:
    """Build a methodology from its parsed TOML table."""
    parameters = {
        name: Parameter(
            name=name,
            value=Decimal(str(p["value"])),
            unit=p["unit"],
            evidence=Evidence(p["evidence"]),
            source=p["source"],
        )
        for name, p in data.get("parameters", {}).items()
    }
    scenes = {}
    for code, s in data["scenes"].items():
        if code not in SCENES:
            raise MethodologyError(f"{data['id']}: unknown scene {code}")
        caps = tuple(
            Cap(period=c["period"], max_g=c.get("max_g"), max_count=c.get("max_count"))
            for c in s.get("caps", [])
        )
        for c in caps:
            if c.period not in ("day", "month"):
                raise MethodologyError(f"{data['id']}: cap period {c.period} is not day or month")
        scenes[code] = SceneRule(
            scene=code,
            unit=s.get("unit", SCENES[code].unit),
            baseline=expressions.parse(str(s["baseline"])),
            project=expressions.parse(str(s.get("project", "0"))),
            caps=caps,
        )
    return Methodology(
        id=data["id"],
        version=data["version"],
        title=data["title"],
        title_zh=data.get("title_zh", ""),
        issuer=data["issuer"],
        status=MethodologyStatus(data["status"]),
        effective_from=_date(data["effective_from"]),
        effective_to=_date(data["effective_to"]) if "effective_to" in data else None,
        jurisdiction=tuple(data["jurisdiction"]),
        scenes=scenes,
        parameters=parameters,
        factor_year=data.get("factor_year"),
        official_code=data.get("official_code", ""),
        description=data.get("description", "").strip(),
        references=tuple(data.get("references", [])),
        supersedes=str(data.get("supersedes", "")),
        retroactive=_flag(data.get("retroactive", False), "retroactive"),
        factor_pins=tuple(str(f) for f in data.get("factors", [])),
    )


def _flag(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise MethodologyError(f"{name} is true or false, not {value!r}")
    return value


def _date(value: object) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))
