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
from puhui.adapters.sql.restatement import certified_accounts, read_records
from puhui.domain import china_time
from puhui.domain.errors import FactorNotFoundError, MethodologyError
from puhui.domain.methodology import MILLI, Catalogue, UnitQuantification, reduction_for
from puhui.domain.reasons import Reason
from puhui.domain.restatement import settle_group
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


def pinned_factors(trace: str) -> dict[str, str]:
    """The factor ids a stored calculation's trace names, by name.

    Raises:
        ValueError: the trace is not a calculation's JSON.
    """
    try:
        names = json.loads(trace)["names"]
        return {str(n["name"]): str(n["factor_id"]) for n in names if n["factor_id"]}
    except (TypeError, KeyError) as exc:
        raise ValueError(f"not a calculation's trace: {exc}") from None


def rederive(
    catalogue: Catalogue, ref: str, scene: str, region: str, material: str, trace: str
) -> UnitQuantification:
    """A stored calculation computed again by its pinned methodology version, with the factors
    its trace names (by id).

    Raises:
        MethodologyError: no such version, or it does not cover the scene.
        FactorNotFoundError: a factor missing, or one the version may not use here.
        ValueError: the trace is not a calculation's JSON.
    """
    factor_ids = pinned_factors(trace)
    return catalogue.calculate(catalogue.get(ref), scene, region, material, factor_ids)


def same_calculation(
    computed: UnitQuantification, digest: str, unit: str, per_unit: object, trace: str
) -> bool:
    """Whether a stored calculation's row is, bit for bit, the one computed."""
    columns, expected_trace = calculation_row(computed)
    return (
        digest == quantification_key(computed)
        and trace == expected_trace
        and unit == columns["unit"]
        and _same_number(per_unit, computed.reduction_g)
    )


def altered_calculations(conn: Connection, catalogue: Catalogue) -> Iterator[str]:
    """The ids of stored calculations that differ from what their methodology version computes
    with the factors their trace names (`rederive`): the per-unit figure, the unit, the
    formulas, a factor's value or source, a parameter, a region fallback, the trace or its
    digest; or that name a factor their version may not use there."""
    for qid, digest, ref, scene, region, material, unit, per_unit, trace in _rows(
        conn,
        "select id, digest, methodology, scene, region, material, unit, reduction_per_unit, "
        "trace from quantifications order by id",
    ):
        try:
            computed = rederive(catalogue, ref, scene, region, material, trace)
        except (MethodologyError, FactorNotFoundError, ValueError):
            yield str(qid)
            continue
        if not same_calculation(computed, digest, unit, per_unit, trace):
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


def _restated_deltas(conn: Connection) -> dict[int, list[tuple[int, int]]]:
    """For each restated record: (after_seq, change in grams) of each of its restatements."""
    found: dict[int, list[tuple[int, int]]] = {}
    for seq, after, delta in _rows(
        conn,
        "select record_seq, after_seq, grams - grams_before from restated_credits order by id",
    ):
        found.setdefault(int(seq), []).append((int(after), int(delta)))
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
    its held grams are judged the same way. A credit restated counts with its restated grams
    for the records received after its restatement (`restated_credits.after_seq`), as
    settlement counted it then."""
    calculations = _calculations(conn)
    restated = _restated_deltas(conn)
    caps: dict[tuple[str, str], Caps] = {}
    book = Book()
    group: tuple[object, object] | None = None
    # Rejected held records of the current citizen's scene: when they stop counting.
    stops: list[tuple[int, object, int]] = []
    # Restatements of the current citizen's scene's earlier credits: when they start counting.
    starts: list[tuple[int, object, int]] = []
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
            book, group, stops, starts = Book(), (citizen, scene), [], []
        for stop in [s for s in stops if s[0] <= seq]:
            book.use(citizen, scene, stop[1], -1, -stop[2])  # type: ignore[arg-type]
            stops.remove(stop)
        for start in [s for s in starts if s[0] < seq]:
            book.use(citizen, scene, start[1], 0, start[2])  # type: ignore[arg-type]
            starts.remove(start)
        if start_ms is not None:
            starts += [
                (after, china_time.day_of_ms(int(start_ms)), delta)
                for after, delta in restated.get(int(seq), ())
            ]
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


def misrestated_credits(conn: Connection, catalogue: Catalogue) -> Iterator[str]:
    """What breaks a restatement (`domain.restatement`, `adapters/sql/restatement.py`), named
    `record:<seq>`, `posting:<id>` or `transfer:<id>`:

    - a restated credit whose restatements do not follow one another from its receipt (each
      starts from the calculation and grams the one before left), whose calculation is not its
      restatement's target version (or unchanged), or whose posting is not its citizen's
      account (its batch's buffer or pool, when certified) for its platform;
    - a record of a citizen's scene with a restated credit whose grams now are not what the
      scene's records settle to under their calculations now, caps re-applied in receive order;
    - a posting whose grams are not the sum of its credits' changes, or whose transfer is not
      that posting (kind `restated`, the amount posted, between the account and its platform's
      issuance account for the target); a `restated` transfer no posting names.
    """
    rows = conn.execute(
        text(
            "select x.id, x.record_seq, x.posting_id, x.before_quantification_id, "
            "x.quantification_id, x.methodology, x.grams_before, x.grams, s.methodology, "
            "q.methodology from restated_credits x "
            "join restatements s on s.id = x.restatement_id "
            "left join quantifications q on q.id = x.quantification_id order by x.id"
        )
    ).all()
    if (
        not rows
        and not conn.execute(text("select 1 from transfers where kind = 'restated'")).first()
    ):
        return
    records = {
        int(seq): (int(grams), qid, subject, platform)
        for seq, grams, qid, subject, platform in conn.execute(
            text(
                "select r.seq, r.reduction_g, r.quantification_id, r.subject_id, r.platform_id "
                "from records r where r.seq in (select record_seq from restated_credits)"
            )
        )
    }
    certified = certified_accounts(conn, sorted(records))
    citizens = {
        int(s): int(a)
        for s, a in conn.execute(
            text(
                "select a.subject_id, a.id from accounts a where a.kind = 'citizen' "
                "and a.subject_id in (select r.subject_id from records r "
                "where r.seq in (select record_seq from restated_credits))"
            )
        )
    }
    postings = {
        int(p): (int(account), int(platform), int(delta), int(posted), transfer, str(target))
        for p, account, platform, delta, posted, transfer, target in conn.execute(
            text(
                "select p.id, p.account_id, p.platform_id, p.delta_g, p.posted_g, "
                "p.transfer_id, s.methodology from restatement_postings p "
                "join restatements s on s.id = p.restatement_id"
            )
        )
    }
    now: dict[int, tuple[object, int]] = {}
    sums: dict[int, int] = {}
    bad: set[str] = set()
    for _, seq, posting, before_q, qid, ref, before_g, grams, target, q_ref in rows:
        stored = records.get(int(seq))
        if stored is None:
            bad.add(f"record:{seq}")
            continue
        reduction_g, first_q, subject, platform = stored
        last_q, last_g = now.get(int(seq), (first_q, reduction_g))
        if (
            before_q != last_q
            or int(before_g) != last_g
            or ref != q_ref
            or (qid != before_q and ref != target)
        ):
            bad.add(f"record:{seq}")
        now[int(seq)] = (qid, int(grams))
        if posting is not None:
            sums[int(posting)] = sums.get(int(posting), 0) + int(grams) - int(before_g)
            p = postings.get(int(posting))
            where = certified.get(int(seq), citizens.get(int(subject)))
            if p is None or p[0] != where or p[1] != int(platform):
                bad.add(f"record:{seq}")
    for posting, (account, platform, delta, posted, transfer, target) in postings.items():
        if sums.get(posting, 0) != delta:
            bad.add(f"posting:{posting}")
            continue
        if transfer is None:
            if posted:
                bad.add(f"posting:{posting}")
            continue
        found = conn.execute(
            text(
                "select x.kind, x.amount, x.debit_account_id, x.credit_account_id, i.kind, "
                "i.platform_id, i.methodology from transfers x left join accounts i "
                "on i.id = case when x.debit_account_id = :a then x.credit_account_id "
                "else x.debit_account_id end where x.id = :x"
            ),
            {"x": transfer, "a": account},
        ).one_or_none()
        pair = (account, None) if posted < 0 else (None, account)
        if (
            found is None
            or found[0] != "restated"
            or int(found[1]) != abs(posted)
            or (posted < 0 and int(found[2]) != pair[0])
            or (posted > 0 and int(found[3]) != pair[1])
            or (found[4], found[5], found[6]) != ("issuance", platform, target)
        ):
            bad.add(f"posting:{posting}")
    named = {p[4] for p in postings.values() if p[4] is not None}
    for (transfer,) in conn.execute(text("select id from transfers where kind = 'restated'")):
        if transfer not in named:
            bad.add(f"transfer:{transfer}")
    # Every citizen's scene with a restated credit settles, under its calculations now, to
    # the grams its records hold now.
    subjects = sorted({int(s[2]) for s in records.values() if s[2] is not None})
    for i in range(0, len(subjects), CHUNK // 10):
        part = read_records(conn, subjects[i : i + CHUNK // 10], catalogue)
        group: list[Any] = []
        for row in [*part, None]:
            if group and (row is None or (row.subject, row.scene) != (group[0].subject,
                                                                      group[0].scene)):  # fmt: skip
                credits = [r.credit for r in group]
                if any(c.seq in now for c in credits):
                    settled = settle_group(credits, lambda c: c.basis)
                    for c, g in zip(credits, settled, strict=True):
                        if c.settled and g != c.grams:
                            bad.add(f"record:{c.seq}")
                group = []
            if row is not None:
                group.append(row)
    yield from sorted(bad)
