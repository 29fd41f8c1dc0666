"""Methodology versions over time: restating the credits of a corrected version, and
recomputing any stored credit from its pinned methodology version and factor ids.

`restate` settles again, under the target version, every credit the versions it supersedes
computed (`domain.restatement`) and posts the differences; `recompute` shows, for one record,
its stored calculation and each restated one computed again, bit for bit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from puhui.adapters.sql.recompute import rederive, same_calculation
from puhui.bootstrap import App
from puhui.domain.errors import FactorNotFoundError, InputError, MethodologyError, NotFoundError
from puhui.domain.methodology import MILLI, reduction_for
from puhui.service import ledger
from puhui.service.admin import check_ready


def restate(app: App, methodology: str, version: str, actor: str, dry_run: bool) -> Any:
    """Restate the credits of the versions `methodology@version` supersedes. A dry run
    reports, per region and scene, what a run would change, and changes nothing.

    Raises:
        NotFoundError: no such version.
        InputError: the version supersedes none.
    """
    check_ready(app)
    ref = f"{methodology}@{version}"
    try:
        target = app.catalogue.get(ref)
    except MethodologyError:
        raise NotFoundError(f"no methodology {ref}") from None
    if not target.supersedes:
        raise InputError(f"{ref} supersedes no version: there is nothing to restate")
    done = app.restatements().restate(target, actor, app.clock(), dry_run)
    if not dry_run:
        ledger.seal_quietly(app)
    return done


def restatements(app: App) -> list[dict[str, Any]]:
    """Every restatement, oldest first, with its totals."""
    check_ready(app)
    return app.restatements().listing()


@dataclass(frozen=True, slots=True)
class Recomputed:
    """One calculation of a record, stored and computed again.

    Attributes:
        methodology: `id@version`.
        factors: the factor ids its trace names, by name.
        stored_per_unit, per_unit: the stored reduction per unit and the one computed again.
        stored_g, grams: the grams stored (credited, or restated to) and computed again from
            the amount (before caps: a capped credit holds less).
        identical: the stored calculation is, bit for bit, the one computed again.
        problem: why it could not be computed again, if it could not.
    """

    methodology: str
    factors: dict[str, str]
    stored_per_unit: Decimal
    per_unit: Decimal | None
    stored_g: int
    grams: int | None
    identical: bool
    problem: str = ""


def recompute(app: App, platform: str, record_id: str) -> list[Recomputed]:
    """A record's stored calculation, then each of its restated ones, computed again from
    their methodology version and the factor ids their trace names.

    Raises:
        NotFoundError: no such record, or it was never quantified.
    """
    check_ready(app)
    row = app.restatements().stored(platform, record_id)
    if row is None:
        raise NotFoundError(f"no quantified record {record_id!r} from platform {platform!r}")
    milli, grams, stored = row
    amount = Decimal(milli) * MILLI
    calculations = [(stored, int(grams))] + [
        (r["calculation"], r["grams"]) for r in app.restatements().of_record(platform, record_id)
    ]
    found = []
    for (digest, ref, scene, region, material, unit, per_unit, trace), credited in calculations:
        stored_per_unit = Decimal(json.loads(trace)["reduction_g"])
        try:
            computed = rederive(app.catalogue, ref, scene, region, material, trace)
        except (MethodologyError, FactorNotFoundError, ValueError) as exc:
            found.append(
                Recomputed(ref, {}, stored_per_unit, None, credited, None, False, str(exc))
            )
            continue
        found.append(
            Recomputed(
                ref,
                {n.name: n.factor_id for n in computed.names if n.factor_id},
                stored_per_unit,
                computed.reduction_g,
                credited,
                reduction_for(amount, computed.reduction_g),
                same_calculation(computed, digest, unit, per_unit, trace),
            )
        )
    return found
