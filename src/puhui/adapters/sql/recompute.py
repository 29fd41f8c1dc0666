"""Ledger audit checks that re-derive every credit in Python, since the methodology catalogue
is Python: each stored calculation is computed again by the shipped catalogue for its pinned
methodology version, and each credited record's grams again from its stored inputs, its
calculation and its methodology's caps.

Rows are read in chunks (`CHUNK`), so a check keeps one chunk in memory besides the
calculations (one per distinct methodology version, scene, region and material) and the caps
usage of one citizen's scene.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Connection, text

from puhui.adapters.batch.prepare import calculation_row, quantification_key
from puhui.domain import china_time
from puhui.domain.errors import FactorNotFoundError, MethodologyError
from puhui.domain.methodology import MILLI, Catalogue, reduction_for
from puhui.domain.reasons import Reason
from puhui.domain.settlement import Book, Candidate, Caps, caps_of

# Rows fetched at a time.
CHUNK = 10_000

# `quantifications.reduction_per_unit` is numeric(24, 9) on PostgreSQL.
_STORED_PLACES = Decimal("1e-9")


@dataclass(frozen=True, slots=True)
class Recomputed:
    """A check that re-derives stored rows against the methodology catalogue: `judge` reads
    what it needs in chunks and names each row breaking the invariant."""

    judge: Callable[[Connection, Catalogue], Iterator[str]]


def _rows(conn: Connection, sql: str) -> Iterator[Any]:
    """The rows of a query, fetched CHUNK at a time (a server-side cursor on PostgreSQL)."""
    yield from conn.execute(text(sql), execution_options={"yield_per": CHUNK})


def _same_number(stored: object, exact: Decimal) -> bool:
    """Whether a stored `reduction_per_unit` is the exact figure as the column keeps it: a
    numeric of 9 places on PostgreSQL, a number (or its text) on SQLite."""
    if isinstance(stored, Decimal):
        return stored == exact.quantize(_STORED_PLACES, rounding=ROUND_HALF_UP)
    if isinstance(stored, str):
        return Decimal(stored) == exact
    if isinstance(stored, int | float):
        return float(stored) == float(exact)
    return False


def altered_calculations(conn: Connection, catalogue: Catalogue) -> Iterator[str]:
    """The ids of stored calculations that differ from what the catalogue computes today for
    their methodology version, scene, region and material: the per-unit figure, the unit,
    the formulas, a factor, a parameter, a region fallback, the trace or its digest."""
    for qid, digest, ref, scene, region, material, unit, per_unit, trace in _rows(
        conn,
        "select id, digest, methodology, scene, region, material, unit, reduction_per_unit, "
        "trace from quantifications order by id",
    ):
        try:
            computed = catalogue.calculate(catalogue.get(ref), scene, region, material)
        except (MethodologyError, FactorNotFoundError):
            yield str(qid)
            continue
        columns, expected_trace = calculation_row(computed)
        stored = {"methodology": ref, "scene": scene, "region": region, "material": material}
        if (
            digest != quantification_key(computed)
            or trace != expected_trace
            or unit != columns["unit"]
            or any(stored[k] != columns[k] for k in stored)
            or not _same_number(per_unit, computed.reduction_g)
        ):
            yield str(qid)


@dataclass(frozen=True, slots=True)
class _Calculation:
    """What a credit needs of its stored calculation."""

    methodology: str
    scene: str
    region: str
    material: str
    per_unit: Decimal | None  # None when the trace cannot be read


def _calculations(conn: Connection) -> dict[int, _Calculation]:
    found = {}
    for qid, ref, scene, region, material, trace in _rows(
        conn, "select id, methodology, scene, region, material, trace from quantifications"
    ):
        try:
            per_unit: Decimal | None = Decimal(json.loads(trace)["reduction_g"])
        except (ValueError, KeyError, TypeError, ArithmeticError):
            per_unit = None
        found[int(qid)] = _Calculation(ref, scene, region, material, per_unit)
    return found


def unrecomputable_credits(conn: Connection, catalogue: Catalogue) -> Iterator[str]:
    """The seqs of credited (or held) records whose receipt is not what their stored inputs
    give: grams other than the amount times their calculation's reduction per unit, rounded
    down, within their methodology's caps given the citizen's earlier credits of the scene
    (settlement's own rules, re-applied in receive order), a `capped` reason where they were
    not capped or none where they were, a methodology, scene, region or material other than
    their calculation's, or no calculation at all.

    Caps count held records as credits (`domain.review`); a held record later rejected counts,
    with the grams it held, for the records received before its decision (`decided_seq`), and
    its held grams are judged the same way."""
    calculations = _calculations(conn)
    caps: dict[tuple[str, str], Caps] = {}
    book = Book()
    group: tuple[object, object] | None = None
    # Rejected held records of the current citizen's scene: when they stop counting.
    stops: list[tuple[int, object, int]] = []
    for (
        seq,
        citizen,
        scene,
        region,
        material,
        start_ms,
        milli,
        grams,
        reason,
        ref,
        qid,
        status,
        held_g,
        decided_seq,
    ) in _rows(
        conn,
        "select r.seq, r.subject_id, r.scene, r.region, r.material, r.start_ms, "
        "r.amount_milli, r.reduction_g, r.reason, r.methodology, r.quantification_id, "
        "r.status, h.grams, h.decided_seq from records r "
        "left join holds h on h.record_seq = r.seq "
        "where r.status = 'credited' or r.status = 'held' "
        "or ((r.status = 'rejected' or r.status = 'duplicate') and h.record_seq is not null) "
        "order by r.subject_id, r.scene, r.seq",
    ):
        if (citizen, scene) != group:
            # Caps count per citizen and scene: the usage of one citizen's scene at a time.
            book, group, stops = Book(), (citizen, scene), []
        for stop in [s for s in stops if s[0] <= seq]:
            book.use(citizen, scene, stop[1], -1, -stop[2])  # type: ignore[arg-type]
            stops.remove(stop)
        # Held, then rejected or found another node's duplicate: it counted until then.
        rejected = status in ("rejected", "duplicate")
        if rejected:
            grams = held_g
            if decided_seq is not None and start_ms is not None:
                stops.append((int(decided_seq), china_time.day_of_ms(int(start_ms)), int(grams)))
        calc = None if qid is None else calculations.get(int(qid))
        if (
            calc is None
            or calc.per_unit is None
            or milli is None
            or start_ms is None
            or (ref, scene, region, material or "")
            != (calc.methodology, calc.scene, calc.region, calc.material)
        ):
            yield str(seq)
            if start_ms is not None:
                # Counted as stored, so that the citizen's later credits are judged alone.
                book.use(citizen, scene, china_time.day_of_ms(int(start_ms)), 1, int(grams))
            continue
        pinned = (calc.methodology, calc.scene)
        if pinned not in caps:
            try:
                caps[pinned] = caps_of(catalogue.get(calc.methodology).scenes[calc.scene])
            except (MethodologyError, KeyError):
                yield str(seq)
                continue
        computed = reduction_for(Decimal(milli) * MILLI, calc.per_unit)
        candidate = Candidate(
            seq=int(seq),
            key=None,
            digest="",
            citizen=citizen,
            scene=scene,
            day=china_time.day_of_ms(int(start_ms)),
            computed_g=computed,
            methodology=calc.methodology,
            caps=caps[pinned],
        )
        expected = book.credit_within_caps(candidate)
        capped = expected < computed
        if held_g is None:
            wrong_reason = (reason or "") != (Reason.CAPPED if capped else "")
        else:
            # Held once: its reason says why it was held or how it ended, and whether capped.
            wrong_reason = not rejected and (Reason.CAPPED in (reason or "").split(";")) != capped
        if int(grams) != expected or wrong_reason:
            yield str(seq)
