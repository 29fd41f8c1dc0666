"""What a citizen holds (grams, retired grams, points by programme) and the operations done on
their account, as they read them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from puhui.bootstrap import App
from puhui.service import queries
from puhui.service.wallet.certificates import with_certificate


@dataclass(frozen=True, slots=True)
class Holdings:
    """Everything a citizen holds, grams and points apart."""

    balance_g: int
    retired_g: int
    points: dict[str, int]


def holdings(app: App, pseudonym: str) -> Holdings:
    """A citizen's grams, retired grams and points by programme (zeros for a stranger)."""
    grams = retired = 0
    points: dict[str, int] = {}
    for kind, code, held in app.reads().holdings(pseudonym) or []:
        if kind == "citizen":
            grams = held
        elif kind == "retired":
            retired = held
        elif kind == "points" and code:
            points[code.split(":")[1]] = held
    return Holdings(grams, retired, dict(sorted(points.items())))


@dataclass(frozen=True, slots=True)
class OperationView:
    """One operation of the audit trail."""

    operation: int
    kind: str
    actor: str
    at: datetime
    result: dict[str, Any]


def operations(app: App, pseudonym: str, limit: int = 50) -> list[OperationView]:
    """A citizen's operations, newest first, each with its certificate id when it has one."""
    return [
        OperationView(
            i, kind, actor, queries.aware(at), with_certificate(app, i, kind, json.loads(result))
        )
        for i, kind, actor, at, result in app.reads().operations(pseudonym, limit)
    ]
