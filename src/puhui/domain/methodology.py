"""Methodologies as data: which formula quantifies a scene, where and when, and how it is traced.

A methodology version declares, for each scene it covers, a baseline formula BE and a project
formula PE, both in grams of CO2e per unit of activity (per km, kg, event or kWh). The reduction
per unit is ER = max(0, BE − PE); a record's reduction is its amount times ER, rounded down to
whole grams (conservative). Names in formulas are the methodology's own parameters or emission
factors chosen for the record's region along the fallback chain.

Which methodology applies to a record: among versions that are usable (`active`, `trial` or
`superseded`), cover the scene and are in force on the record's start date (Asia/Shanghai), the
one whose jurisdiction is the most specific place on the record's region chain (prefecture,
province, grid region, CN). A version corrected by a retroactive successor never quantifies
again: its successor takes every one of its days.

Versions over time (`Methodology.supersedes`, `retroactive`): a new version of a methodology
names the version it supersedes. Its number says what changed (`change_between`): a patch
corrects values (a factor, a parameter, a cap), a minor version adds scenes or places, a major
one changes a formula or drops a scene. A *correction* is retroactive: a patch that takes
effect on the superseded version's first day, so that every credit the old version computed is
restated under it (`domain.restatement`). A *revision* only looks forward: it takes effect on
its own `effective_from` and the old version keeps the days before.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_FLOOR, Context, Decimal, localcontext
from enum import StrEnum
from typing import Any

from puhui.domain import expressions
from puhui.domain.errors import FactorNotFoundError, MethodologyError
from puhui.domain.factors import Evidence, FactorChoice, FactorTable, Prefer
from puhui.domain.regions import RegionCatalogue
from puhui.domain.scenes import MATERIALS, SCENES

MILLI = Decimal("0.001")


class MethodologyStatus(StrEnum):
    """Lifecycle of a methodology version; `draft` and `withdrawn` versions never quantify."""

    DRAFT = "draft"
    TRIAL = "trial"
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    WITHDRAWN = "withdrawn"


USABLE = (MethodologyStatus.ACTIVE, MethodologyStatus.TRIAL, MethodologyStatus.SUPERSEDED)


@dataclass(frozen=True, slots=True)
class Parameter:
    """A constant of one methodology (e.g. a car's fuel use), with its provenance."""

    name: str
    value: Decimal
    unit: str
    evidence: Evidence
    source: str


@dataclass(frozen=True, slots=True)
class Cap:
    """A limit per citizen, scene and period (`day` or `month`, Asia/Shanghai).

    Attributes:
        period: `day` or `month`.
        max_g: most grams credited in the period, if limited.
        max_count: most records credited in the period, if limited.
    """

    period: str
    max_g: int | None = None
    max_count: int | None = None


@dataclass(frozen=True, slots=True)
class SceneRule:
    """How one methodology quantifies one scene.

    Attributes:
        scene: scene code.
        unit: activity unit of the amount (km, kg, count, kWh).
        baseline: formula for BE per unit, g CO2e.
        project: formula for PE per unit, g CO2e.
        caps: limits per citizen and period.
    """

    scene: str
    unit: str
    baseline: expressions.Expr
    project: expressions.Expr
    caps: tuple[Cap, ...] = ()

    def cap(self, period: str) -> Cap | None:
        """Return the cap for a period, if any."""
        return next((c for c in self.caps if c.period == period), None)


@dataclass(frozen=True, slots=True)
class Methodology:
    """One version of a methodology.

    Attributes:
        id: stable identifier, e.g. `cn-public-transit`.
        version: semantic version of this encoding.
        title: English title; `title_zh` the Chinese one.
        issuer: the body that issued the official text this encodes.
        status: lifecycle status.
        effective_from: first day it applies to (record start date, Asia/Shanghai).
        effective_to: first day it no longer applies to, if any.
        jurisdiction: places it covers (GB/T 2260 codes, grid regions or `CN`).
        scenes: rules per scene.
        parameters: its own constants.
        factor_year: latest data year of factors it may use (pinned), if any.
        official_code: the official document's code, if any.
        references: the documents it rests on.
        supersedes: the version of the same methodology it replaces, if any.
        retroactive: a correction (it applies to every day of the version it supersedes, whose
            credits are restated), not a revision (from its own `effective_from` on).
        factor_pins: factor ids it takes for their key and place whatever their data year:
            which edition of a value it uses when a place has several of one year.
    """

    id: str
    version: str
    title: str
    title_zh: str
    issuer: str
    status: MethodologyStatus
    effective_from: date
    effective_to: date | None
    jurisdiction: tuple[str, ...]
    scenes: Mapping[str, SceneRule]
    parameters: Mapping[str, Parameter] = field(default_factory=dict)
    factor_year: int | None = None
    official_code: str = ""
    description: str = ""
    references: tuple[str, ...] = ()
    supersedes: str = ""
    retroactive: bool = False
    factor_pins: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        """`id@version`, as receipts show it."""
        return f"{self.id}@{self.version}"

    @property
    def superseded_ref(self) -> str | None:
        """`id@version` of the version it supersedes, if any."""
        return f"{self.id}@{self.supersedes}" if self.supersedes else None

    @property
    def semver(self) -> tuple[int, int, int]:
        """Its version as (major, minor, patch).

        Raises:
            MethodologyError: the version is not MAJOR.MINOR.PATCH.
        """
        return semver(self.version)

    def in_force(self, day: date) -> bool:
        """Whether its own dates and status let it apply to records that started on `day` (a
        catalogue may still hand the day to a correction of it: `Catalogue.in_force`)."""
        if self.status not in USABLE:
            return False
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)


class Change(StrEnum):
    """How large a change between two versions is, as semantic versioning counts it."""

    PATCH = "patch"  # corrected values: a factor, a parameter, a cap
    MINOR = "minor"  # new scenes or places
    MAJOR = "major"  # a changed formula or unit, a scene or place dropped


def semver(version: str) -> tuple[int, int, int]:
    """`1.0.1` as (1, 0, 1).

    >>> semver("1.10.0") > semver("1.9.3")
    True

    Raises:
        MethodologyError: not MAJOR.MINOR.PATCH.
    """
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise MethodologyError(f"version {version!r} is not MAJOR.MINOR.PATCH")
    return int(parts[0]), int(parts[1]), int(parts[2])


def change_between(old: Methodology, new: Methodology) -> Change:
    """The least version step that the difference between two versions needs.

    A formula or unit changed, or a scene or place dropped: major. Scenes or places added:
    minor. Anything else that changes results (parameters, caps, factor year, pinned factors,
    the factor rows themselves): patch.
    """
    for scene, rule in old.scenes.items():
        now = new.scenes.get(scene)
        if now is None or (now.unit, now.baseline.source, now.project.source) != (
            rule.unit,
            rule.baseline.source,
            rule.project.source,
        ):
            return Change.MAJOR
    if not set(old.jurisdiction) <= set(new.jurisdiction):
        return Change.MAJOR
    if set(new.scenes) - set(old.scenes) or set(new.jurisdiction) - set(old.jurisdiction):
        return Change.MINOR
    return Change.PATCH


def step_of(old: str, new: str) -> Change | None:
    """The step from one version number to a later one; None when `new` is not later.

    >>> step_of("1.0.0", "1.0.1"), step_of("1.0.1", "1.1.0"), step_of("1.2.0", "2.0.0")
    (<Change.PATCH: 'patch'>, <Change.MINOR: 'minor'>, <Change.MAJOR: 'major'>)
    """
    a, b = semver(old), semver(new)
    if b <= a:
        return None
    if b[0] != a[0]:
        return Change.MAJOR
    return Change.MINOR if b[1] != a[1] else Change.PATCH


_ORDER = {Change.PATCH: 0, Change.MINOR: 1, Change.MAJOR: 2}


@dataclass(frozen=True, slots=True)
class NameUse:
    """What one name in a formula resolved to: a parameter or a chosen factor."""

    name: str
    value: Decimal
    unit: str
    evidence: str
    source: str
    factor_id: str = ""
    region_asked: str = ""
    region_used: str = ""
    region_level: str = ""
    derivation: str = ""


@dataclass(frozen=True, slots=True)
class UnitQuantification:
    """The reduction per unit of activity for one scene, region and material.

    Attributes:
        methodology: `id@version`.
        scene, region, material: what it was computed for.
        unit: activity unit.
        baseline_g, project_g: BE and PE per unit, exact grams.
        reduction_g: ER per unit = max(0, BE − PE), exact grams.
        names: every parameter and factor used, with provenance and fallback.
    """

    methodology: str
    scene: str
    region: str
    material: str
    unit: str
    baseline_formula: str
    project_formula: str
    baseline_g: Decimal
    project_g: Decimal
    reduction_g: Decimal
    names: tuple[NameUse, ...]

    def reduction_for(self, amount: Decimal) -> int:
        """Whole grams credited for an amount: amount rounded down to a thousandth, times ER,
        rounded down (both roundings are conservative).

        >>> q = UnitQuantification("m@1", "bus", "110000", "", "km", "", "", Decimal(0),
        ...     Decimal(0), Decimal("215.8"), ())
        >>> q.reduction_for(Decimal("5.0009"))
        1079
        """
        return reduction_for(amount, self.reduction_g)


def reduction_for(amount: Decimal, per_unit: Decimal) -> int:
    """Whole grams for an amount at a reduction per unit: the amount rounded down to a
    thousandth, times the reduction per unit, rounded down.

    >>> reduction_for(Decimal("2.5"), Decimal("219.72883"))
    549
    >>> reduction_for(Decimal("12.3456"), Decimal("100"))
    1234
    """
    # Wide enough that the product is exact for any amount intake accepts (below 10^15).
    with localcontext(Context(prec=80)):
        quantised = amount.quantize(MILLI, rounding=ROUND_FLOOR)
        return int((quantised * per_unit).to_integral_value(rounding=ROUND_FLOOR))


class Catalogue:
    """Every methodology version and factor in force, and the regions they refer to."""

    def __init__(
        self,
        methodologies: Iterable[Methodology],
        factors: FactorTable,
        regions: RegionCatalogue,
    ) -> None:
        self.methodologies = tuple(sorted(methodologies, key=lambda m: (m.id, m.effective_from)))
        self.factors = factors
        self.regions = regions
        # `id@version` of each version a retroactive successor corrects: it never quantifies.
        self.corrected = frozenset(
            m.superseded_ref for m in self.methodologies if m.retroactive and m.superseded_ref
        )
        self._check()

    def _check(self) -> None:
        refs = [m.ref for m in self.methodologies]
        if len(set(refs)) != len(refs):
            raise MethodologyError("a methodology version is defined twice")
        for m in self.methodologies:
            for place in m.jurisdiction:
                if place != "CN" and not place.startswith("CN-GRID-") and place not in self.regions:
                    raise MethodologyError(f"{m.ref}: jurisdiction {place} is not a known region")
            for rule in m.scenes.values():
                if rule.scene not in SCENES:
                    raise MethodologyError(f"{m.ref}: unknown scene {rule.scene}")
                for expr in (rule.baseline, rule.project):
                    for name in expr.names:
                        if name in m.parameters or "{material}" in name:
                            continue
                        if name not in self.factors.keys():  # noqa: SIM118 (keys() is a method here)
                            raise MethodologyError(f"{m.ref}: formula name {name} is unknown")
        self._check_lineage()
        # Two usable versions must never both claim one scene at one place on one day; a
        # version its correction replaces claims nothing.
        usable = [
            m for m in self.methodologies if m.status in USABLE and m.ref not in self.corrected
        ]
        for i, a in enumerate(usable):
            for b in usable[i + 1 :]:
                shared = set(a.scenes) & set(b.scenes)
                places = set(a.jurisdiction) & set(b.jurisdiction)
                if shared and places and _overlap(a, b):
                    raise MethodologyError(
                        f"{a.ref} and {b.ref} both cover {sorted(shared)} in {sorted(places)} "
                        "on the same days"
                    )

    def _check_lineage(self) -> None:
        """Each `supersedes` names an earlier version of the same methodology, with a version
        step at least as large as the change; a correction is a patch from the superseded
        version's first day; a version something supersedes says `superseded`."""
        by_ref = {m.ref: m for m in self.methodologies}
        ids = {f.factor_id for f in self.factors}
        for m in self.methodologies:
            m.semver  # noqa: B018 (raises on a malformed version)
            for pin in m.factor_pins:
                if pin not in ids:
                    raise MethodologyError(f"{m.ref}: pinned factor {pin} is not in factors.csv")
            if not m.supersedes:
                if m.retroactive:
                    raise MethodologyError(f"{m.ref}: retroactive, but supersedes no version")
                continue
            old = by_ref.get(m.superseded_ref or "")
            if old is None:
                raise MethodologyError(
                    f"{m.ref}: supersedes {m.superseded_ref}, not in the catalogue"
                )
            step = step_of(old.version, m.version)
            if step is None:
                raise MethodologyError(f"{m.ref}: supersedes {old.ref}, not an earlier version")
            needed = change_between(old, m)
            if _ORDER[step] < _ORDER[needed]:
                raise MethodologyError(
                    f"{m.ref}: a {step} step from {old.ref}, but the change is {needed}"
                )
            if old.status is not MethodologyStatus.SUPERSEDED:
                raise MethodologyError(
                    f"{old.ref}: superseded by {m.ref}, but its status is {old.status}"
                )
            if m.retroactive:
                if step is not Change.PATCH:
                    raise MethodologyError(f"{m.ref}: a correction is a patch, not a {step} step")
                if m.effective_from != old.effective_from:
                    raise MethodologyError(
                        f"{m.ref}: a correction takes effect on {old.ref}'s first day, "
                        f"{old.effective_from}"
                    )
        superseded = [m.superseded_ref for m in self.methodologies if m.superseded_ref]
        if len(set(superseded)) != len(superseded):
            raise MethodologyError("a version is superseded by two versions")

    def lineage(self, methodology_id: str) -> list[Methodology]:
        """Every version of a methodology, oldest first by version number."""
        return sorted(
            (m for m in self.methodologies if m.id == methodology_id), key=lambda m: m.semver
        )

    def superseded_by(self, ref: str) -> list[Methodology]:
        """The versions a version supersedes, directly or through others, nearest first."""
        found = []
        m = self.get(ref)
        while m.superseded_ref:
            m = self.get(m.superseded_ref)
            found.append(m)
        return found

    def in_force(self, m: Methodology, day: date) -> bool:
        """Whether a version quantifies records that started on `day`: its own dates and
        status, and no correction of it in the catalogue."""
        return m.ref not in self.corrected and m.in_force(day)

    def get(self, ref: str) -> Methodology:
        """Return a methodology version by `id@version`."""
        for m in self.methodologies:
            if m.ref == ref:
                return m
        raise MethodologyError(f"no methodology {ref}")

    def fingerprint(self, ref: str) -> str:
        """What identifies how a methodology version computes, across installations: SHA-256,
        hex, of the canonical JSON (keys sorted, no spaces, UTF-8) of its id, version, dates,
        jurisdiction, pinned factor year, parameters (name: [value, unit]), scenes (unit,
        baseline and project formulas, caps), the factors its formulas can use
        ([id, key, region, value, unit, data year], by id) and, when it pins some, the pinned
        factor ids (`factor_pins`, sorted). Titles, status and references
        are not in it: two nodes whose versions share a fingerprint compute every credit
        alike.

        Raises:
            MethodologyError: no such version.
        """
        m = self.get(ref)
        names = {n for rule in m.scenes.values() for e in (rule.baseline, rule.project)
                 for n in e.names if n not in m.parameters}  # fmt: skip

        def used(key: str) -> bool:
            for name in names:
                head, _, tail = name.partition("{material}")
                if key == name or (_ and key.startswith(head) and key.endswith(tail)):
                    return True
            return False

        document = {
            "id": m.id,
            "version": m.version,
            "effective_from": m.effective_from.isoformat(),
            "effective_to": None if m.effective_to is None else m.effective_to.isoformat(),
            "jurisdiction": list(m.jurisdiction),
            "factor_year": m.factor_year,
            "parameters": {p.name: [str(p.value), p.unit] for p in m.parameters.values()},
            "scenes": {
                r.scene: {
                    "unit": r.unit,
                    "baseline": r.baseline.source,
                    "project": r.project.source,
                    "caps": [[c.period, c.max_g, c.max_count] for c in r.caps],
                }
                for r in m.scenes.values()
            },
            "factors": sorted(
                [f.factor_id, f.key, f.region, str(f.value), f.unit, f.data_year]
                for f in self.factors
                if used(f.key)
            ),
        }
        if m.factor_pins:
            document["factor_pins"] = sorted(m.factor_pins)
        text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(text.encode()).hexdigest()

    def select(self, scene: str, region: str, day: date) -> Methodology | None:
        """Return the methodology that quantifies a scene at a place on a day, or None."""
        for place in self.regions.chain(region):
            for m in self.methodologies:
                if scene in m.scenes and place in m.jurisdiction and self.in_force(m, day):
                    return m
        return None

    def boundaries(self) -> list[date]:
        """Every date on which the choice of methodology may change, sorted."""
        days = {m.effective_from for m in self.methodologies}
        days |= {m.effective_to for m in self.methodologies if m.effective_to is not None}
        return sorted(days)

    def quantify(
        self, scene: str, region: str, material: str, day: date
    ) -> UnitQuantification | None:
        """Compute the reduction per unit for a scene, region, material and start day.

        Returns None when no methodology covers it.

        Raises:
            FactorNotFoundError: the methodology names a factor missing for this region.
        """
        m = self.select(scene, region, day)
        if m is None:
            return None
        return self.calculate(m, scene, region, material)

    def calculate(
        self,
        m: Methodology,
        scene: str,
        region: str,
        material: str,
        factor_ids: Mapping[str, str] | None = None,
    ) -> UnitQuantification:
        """Compute the reduction per unit by one methodology version for a scene, region and
        material, whatever the day: what a stored calculation pinned to that version is.

        `factor_ids` (name → factor id), when given, are the factors a stored calculation
        names: each is taken by its id instead of chosen, and must be one the version may use
        for this region (its key, a place on the region's fallback chain, a data year within
        the version's `factor_year` unless the version pins it). This re-derives a calculation
        made when the catalogue chose another edition of a value.

        Raises:
            MethodologyError: the version does not cover the scene.
            FactorNotFoundError: the methodology names a factor missing for this region, or a
                given factor id it may not use.
        """
        rule = m.scenes.get(scene)
        if rule is None:
            raise MethodologyError(f"{m.ref} does not cover scene {scene}")
        chain = self.regions.chain(region)
        uses: dict[str, NameUse] = {}
        pins = frozenset(m.factor_pins)

        def named(key: str) -> FactorChoice:
            f = self.factors.by_id((factor_ids or {})[key])
            if (
                f.key != key
                or f.region not in chain
                or (
                    m.factor_year is not None
                    and f.data_year > m.factor_year
                    and f.factor_id not in pins
                )
            ):
                raise FactorNotFoundError(f"factor {f.factor_id} is not one {m.ref} uses here")
            return FactorChoice(f, chain[0], chain)

        def resolver(prefer: Prefer) -> Any:
            def lookup(name: str) -> Decimal:
                key = name.replace("{material}", material)
                if key in m.parameters:
                    p = m.parameters[key]
                    uses.setdefault(key, NameUse(key, p.value, p.unit, p.evidence, p.source))
                    return p.value
                if factor_ids is not None and key in factor_ids:
                    choice = named(key)
                else:
                    choice = self.factors.choose(
                        key, chain, max_year=m.factor_year, prefer=prefer, pins=pins
                    )
                uses.setdefault(key, self._use(key, choice))
                return choice.factor.value

            return lookup

        try:
            baseline = rule.baseline.evaluate(resolver(Prefer.LOW))
            project = rule.project.evaluate(resolver(Prefer.HIGH))
        except FactorNotFoundError as exc:
            raise FactorNotFoundError(f"{m.ref}, scene {scene}, region {region}: {exc}") from None
        return UnitQuantification(
            methodology=m.ref,
            scene=scene,
            region=region,
            material=material,
            unit=rule.unit,
            baseline_formula=rule.baseline.source,
            project_formula=rule.project.source,
            baseline_g=baseline,
            project_g=project,
            reduction_g=max(Decimal(0), baseline - project),
            names=tuple(uses.values()),
        )

    def _use(self, key: str, choice: FactorChoice) -> NameUse:
        f = choice.factor
        return NameUse(
            name=key,
            value=f.value,
            unit=f.unit,
            evidence=f.evidence,
            source=f.source,
            factor_id=f.factor_id,
            region_asked=choice.asked,
            region_used=f.region,
            region_level=self.regions.level_of(f.region),
            derivation=f.derivation,
        )

    def check_coverage(self, day: date) -> list[str]:
        """List every (scene, region, material) a record could name on `day` that cannot be
        quantified; an empty list means every province and prefecture is covered."""
        problems = []
        for region in self.regions.codes():
            for scene, spec in SCENES.items():
                for material in MATERIALS if spec.needs_material else ("",):
                    try:
                        if self.quantify(scene, region, material, day) is None:
                            problems.append(f"{scene}/{region}/{material}: no methodology")
                    except FactorNotFoundError as exc:
                        problems.append(str(exc))
        return problems


def _overlap(a: Methodology, b: Methodology) -> bool:
    a_end = a.effective_to or date.max
    b_end = b.effective_to or date.max
    return a.effective_from < b_end and b.effective_from < a_end
