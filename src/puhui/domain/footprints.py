"""A citizen's own emissions, to offset by retiring grams: computed with the same factor table
and region fallback as credits, and explained the same way.

Offsetting errs the other way from crediting: where sources differ the larger factor is taken
and grams are rounded up, so that what is retired covers at least the footprint declared.

Shipped kinds:

- `electricity`: kWh of household electricity × the grid factor of the region (city →
  province → grid region → national);
- `car`: km driven in a petrol car × its fuel use (the `fuel_l_per_km` parameter of the
  national methodology) × the CO2 of a litre of petrol.

Flights are not offered: no sourced factor for air travel is in the factor table yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_CEILING, Decimal
from typing import Any

from puhui.domain.errors import InputError, MethodologyError
from puhui.domain.factors import FactorChoice, Prefer
from puhui.domain.methodology import Catalogue

KINDS = ("electricity", "car")
UNITS = {"electricity": "kWh", "car": "km"}
# A household's month is well under this; a larger figure is a typing error.
MOST = {"electricity": Decimal(100_000), "car": Decimal(20_000)}
NATIONAL_METHODOLOGY = "cn-common"


@dataclass(frozen=True, slots=True)
class Term:
    """One number of a footprint's formula, with where it comes from."""

    name: str
    value: Decimal
    unit: str
    evidence: str
    source: str
    factor_id: str = ""
    region_used: str = ""


@dataclass(frozen=True, slots=True)
class Footprint:
    """A declared footprint and its calculation."""

    kind: str
    amount: Decimal
    unit: str
    region: str
    formula: str
    terms: tuple[Term, ...]
    grams: int

    def explanation(self) -> list[str]:
        """The calculation, line by line, as `methodology explain` shows a credit."""
        lines = [f"{self.kind}: {self.amount} {self.unit} in {self.region}", self.formula]
        for term in self.terms:
            place = f" (found for {term.region_used})" if term.region_used else ""
            ident = f" [{term.factor_id}]" if term.factor_id else ""
            lines.append(
                f"  {term.name} = {term.value} {term.unit}{place}, {term.evidence}{ident}: "
                f"{term.source}"
            )
        lines.append(f"footprint: {self.grams} g CO2e (rounded up)")
        return lines

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, as kept on a retirement certificate."""
        return {
            "kind": self.kind,
            "amount": str(self.amount),
            "unit": self.unit,
            "region": self.region,
            "formula": self.formula,
            "grams": self.grams,
            "terms": [
                {
                    "name": term.name,
                    "value": str(term.value),
                    "unit": term.unit,
                    "evidence": term.evidence,
                    "source": term.source,
                    "factor_id": term.factor_id,
                    "region_used": term.region_used,
                }
                for term in self.terms
            ],
        }


def compute(
    catalogue: Catalogue, kind: str, amount: Decimal, region: str = "CN", day: date | None = None
) -> Footprint:
    """The footprint of `amount` (kWh or km) of a kind, in a region.

    Raises:
        InputError: an unknown kind, or an amount that is not a positive number in range.
    """
    if kind not in KINDS:
        raise InputError(f"a footprint is one of {', '.join(KINDS)}, not {kind!r}")
    if not amount.is_finite() or amount <= 0 or amount > MOST[kind]:
        raise InputError(
            f"a {kind} footprint is more than 0 and at most {MOST[kind]} {UNITS[kind]}"
        )
    chain = catalogue.regions.chain(region)
    if kind == "electricity":
        grid = _term("grid_ef", catalogue.factors.choose("grid_ef", chain, prefer=Prefer.HIGH))
        terms: tuple[Term, ...] = (grid,)
        formula = "footprint = kWh × grid_ef"
        grams = amount * grid.value
    else:
        national = _national(catalogue, day)
        parameter = national.parameters["fuel_l_per_km"]
        fuel = Term(
            "fuel_l_per_km",
            parameter.value,
            parameter.unit,
            str(parameter.evidence),
            f"{parameter.source} ({national.ref})",
        )
        petrol = _term(
            "gasoline_g_per_l",
            catalogue.factors.choose("gasoline_g_per_l", chain, prefer=Prefer.HIGH),
        )
        terms = (fuel, petrol)
        formula = "footprint = km × fuel_l_per_km × gasoline_g_per_l"
        grams = amount * fuel.value * petrol.value
    return Footprint(
        kind,
        amount,
        UNITS[kind],
        region,
        formula,
        terms,
        int(grams.to_integral_value(ROUND_CEILING)),
    )


def _term(name: str, choice: FactorChoice) -> Term:
    f = choice.factor
    return Term(name, f.value, f.unit, str(f.evidence), f.source, f.factor_id, f.region)


def _national(catalogue: Catalogue, day: date | None) -> Any:
    for m in catalogue.methodologies:
        if m.id == NATIONAL_METHODOLOGY and (day is None or m.in_force(day)):
            return m
    raise MethodologyError(f"no {NATIONAL_METHODOLOGY} methodology in force")
