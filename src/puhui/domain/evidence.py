"""Evidence policies: which sources a credit needs, and the thresholds of the fraud signals.

A policy says, for a scene in some regions, which member platforms are authoritative (they see
the behaviour happen: the metro operator's gates, the recycler's weighing station) and what a
record of any other platform needs before it is credited: nothing (`none`), a second source
(`corroboration`: an authority reports the same behaviour, which settlement finds as a
cross-platform duplicate, whichever came first), or a reviewer (`review`). Records of
behaviours before the policies' `in_force_from` day are credited as v1 settles them.

Policies are data (`methodologies/evidence/*.toml`, the latest version in force); this module
is their model and the statement of how a record is matched to one.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from puhui.domain.errors import MethodologyError
from puhui.domain.reasons import Reason
from puhui.domain.scenes import SCENES

FOLDER = Path(__file__).resolve().parent.parent / "methodologies" / "evidence"


class Need(StrEnum):
    """What a record of a non-authoritative platform needs to be credited."""

    NONE = "none"
    CORROBORATION = "corroboration"
    REVIEW = "review"


class OnTimeout(StrEnum):
    """What becomes of a record still uncorroborated at the end of its policy's window."""

    REJECT = "reject"
    CREDIT = "credit"


@dataclass(frozen=True, slots=True)
class Policy:
    """The evidence a scene needs in some regions.

    Attributes:
        id: stable name, shown on held records.
        scene: the scene code.
        regions: GB/T 2260 codes or their prefixes ('' matches every region).
        authorities: platform codes whose records are credited on their own evidence.
        others: what a record of any other platform needs.
        window_days: how long a record waits for corroboration.
        on_timeout: what becomes of it then.
    """

    id: str
    scene: str
    regions: tuple[str, ...]
    authorities: frozenset[str]
    others: Need
    window_days: int = 7
    on_timeout: OnTimeout = OnTimeout.REJECT

    def covers(self, scene: str | None, region: str | None) -> bool:
        """Whether the policy applies to a record of this scene and region."""
        return (
            scene == self.scene
            and region is not None
            and any(region.startswith(prefix) for prefix in self.regions)
        )

    def hold_reason(self, platform: str) -> Reason | None:
        """Why a record of `platform` is held under this policy, None when it is not."""
        if platform in self.authorities or self.others is Need.NONE:
            return None
        if self.others is Need.CORROBORATION:
            return Reason.AWAITING_CORROBORATION
        return Reason.REVIEW_REQUIRED


@dataclass(frozen=True, slots=True)
class VolumeCeiling:
    """Per citizen, scene and China day: most records, and most amount in the scene's unit
    (thousandths, as amounts are kept)."""

    records: int
    amount_milli: int


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The documented thresholds of the signals (`domain.signals`), in the units they compare."""

    device_citizens: int = 4
    device_window_ms: int = 168 * 3_600_000
    citizen_devices: int = 4
    hopping_window_ms: int = 168 * 3_600_000
    max_kmh: int = 800
    min_jump_m: int = 50_000
    max_gap_ms: int = 12 * 3_600_000
    volume: dict[str, VolumeCeiling] = field(default_factory=dict)
    burst_records: int = 20
    burst_ratio: int = 10
    repeat_times: int = 2
    repeat_window_ms: int = 168 * 3_600_000


@dataclass(frozen=True, slots=True)
class Evidence:
    """A version of the evidence policies: signal thresholds and the policies by scene."""

    version: str
    in_force_from: date
    thresholds: Thresholds
    policies: tuple[Policy, ...] = ()

    def applies_on(self, day: date | None) -> bool:
        """Whether behaviours of this China day are reviewed under this version."""
        return day is not None and day >= self.in_force_from

    def policy_for(self, scene: str | None, region: str | None) -> Policy | None:
        """The policy of a record's scene and region: the one whose longest region prefix
        matches (a city's policy before its province's), None when none does."""
        best: tuple[int, Policy] | None = None
        for policy in self.policies:
            if not policy.covers(scene, region):
                continue
            assert region is not None
            length = max(len(p) for p in policy.regions if region.startswith(p))
            if best is None or length > best[0]:
                best = (length, policy)
        return None if best is None else best[1]


# No policy and no signal: every record credited as v1 settles it (tests of v1 behaviour,
# installations that have not adopted the policies).
NO_EVIDENCE = Evidence("none", date.max, Thresholds())


def _hours(section: dict[str, Any], key: str, default_ms: int) -> int:
    value = section.get(key)
    return default_ms if value is None else int(value) * 3_600_000


def parse(data: dict[str, Any], source: str = "evidence") -> Evidence:
    """Evidence policies from their TOML form (see the shipped file for the format).

    Raises:
        MethodologyError: an unknown scene, need or timeout, or a missing field.
    """
    try:
        s = data.get("signals", {})
        volume = {
            scene: VolumeCeiling(int(v["records"]), round(float(v["amount"]) * 1000))
            for scene, v in s.get("volume_outlier", {}).items()
        }
        unknown = set(volume) - set(SCENES)
        if unknown:
            raise MethodologyError(f"{source}: unknown scene(s) {sorted(unknown)}")
        d, h, v = s.get("device_shared", {}), s.get("device_hopping", {}), s.get("velocity", {})
        b, r = s.get("burst", {}), s.get("repeated_trip", {})
        defaults = Thresholds()
        thresholds = Thresholds(
            device_citizens=int(d.get("citizens", defaults.device_citizens)),
            device_window_ms=_hours(d, "window_hours", defaults.device_window_ms),
            citizen_devices=int(h.get("devices", defaults.citizen_devices)),
            hopping_window_ms=_hours(h, "window_hours", defaults.hopping_window_ms),
            max_kmh=int(v.get("max_kmh", defaults.max_kmh)),
            min_jump_m=round(float(v.get("min_km", defaults.min_jump_m / 1000)) * 1000),
            max_gap_ms=_hours(v, "max_gap_hours", defaults.max_gap_ms),
            volume=volume,
            burst_records=int(b.get("records", defaults.burst_records)),
            burst_ratio=int(b.get("ratio", defaults.burst_ratio)),
            repeat_times=int(r.get("times", defaults.repeat_times)),
            repeat_window_ms=_hours(r, "window_hours", defaults.repeat_window_ms),
        )
        policies = []
        for p in data.get("policy", []):
            if p["scene"] not in SCENES:
                raise MethodologyError(f"{source}: policy {p['id']}: unknown scene {p['scene']}")
            policies.append(
                Policy(
                    id=str(p["id"]),
                    scene=p["scene"],
                    regions=tuple(str(x) for x in p.get("regions", [""])),
                    authorities=frozenset(p.get("authorities", [])),
                    others=Need(p.get("others", "none")),
                    window_days=int(p.get("window_days", 7)),
                    on_timeout=OnTimeout(p.get("on_timeout", "reject")),
                )
            )
        return Evidence(str(data["version"]), data["in_force_from"], thresholds, tuple(policies))
    except (KeyError, TypeError, ValueError) as error:
        raise MethodologyError(f"{source}: {error!s}") from error


def load(path: Path | None = None) -> Evidence:
    """The evidence policies of a file, or the latest shipped version."""
    if path is None:
        path = max(FOLDER.glob("evidence-*.toml"), key=lambda p: int(p.stem.split("-")[1]))
    with path.open("rb") as f:
        return parse(tomllib.load(f), path.name)
