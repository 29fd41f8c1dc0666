"""The vocabulary of activity-record v1: the nine scenes, what kind each is and what its
amounts mean, and the bounds on identifiers."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """A trip has a start, an end and a distance; an event has a moment and a quantity."""

    TRIP = "trip"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class Scene:
    """One scene code of the spec.

    Attributes:
        code: the code sent in `scene`.
        kind: trip or event.
        unit: unit of the activity amount: `km` for trips, the scene's unit for events.
        needs_material: whether `material` is required (recycling only).
    """

    code: str
    kind: Kind
    unit: str
    needs_material: bool = False


SCENES: dict[str, Scene] = {
    s.code: s
    for s in (
        Scene("walk", Kind.TRIP, "km"),
        Scene("bike", Kind.TRIP, "km"),
        Scene("bus", Kind.TRIP, "km"),
        Scene("metro", Kind.TRIP, "km"),
        Scene("ev", Kind.TRIP, "km"),
        Scene("recycling", Kind.EVENT, "kg", needs_material=True),
        Scene("paperless", Kind.EVENT, "count"),
        Scene("no_cutlery", Kind.EVENT, "count"),
        Scene("electricity", Kind.EVENT, "kWh"),
    )
}

TRIP_SCENES: tuple[str, ...] = tuple(c for c, s in SCENES.items() if s.kind is Kind.TRIP)
EVENT_SCENES: tuple[str, ...] = tuple(c for c, s in SCENES.items() if s.kind is Kind.EVENT)
MATERIALS: tuple[str, ...] = ("paper", "plastic", "metal", "glass", "textile")

# `record_id` is at most 128 characters (spec); a longer one is rejected.
MAX_RECORD_ID = 128
# `ref` has no length limit in the spec. A normalised ref longer than this is kept, and compared,
# as "sha256:" and the hex digest of its text, so that any length fits the claims index.
MAX_REF_KEY = 256
# `device` has no length limit in the spec either: one longer than this is kept as "sha256:" and
# the hex digest of its text (equal devices still compare equal).
MAX_DEVICE = 128
# A line of a file longer than this many bytes is not read (`row_too_long`).
MAX_LINE = 2**20
