"""The statement of restatement (`domain.restatement`) against settlement's own
(`domain.settlement`): credits settled under version A and restated to B hold what settling
them under B from the start gives, for any caps, amounts and days; credits of another version
in the same citizen's scene keep their calculation but follow the caps; rejected held records
count until their decision."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from puhui.domain.methodology import MILLI, reduction_for
from puhui.domain.restatement import Basis, Credit, restate, settle_group
from puhui.domain.settlement import Candidate, Caps, settle

caps = st.builds(
    Caps,
    st.none() | st.integers(0, 3_000),
    st.none() | st.integers(0, 4),
    st.none() | st.integers(0, 6_000),
    st.none() | st.integers(0, 8),
)
per_unit = st.decimals("0", "300", places=3)
# (day of October, amount in thousandths, of version A (else another methodology))
records = st.lists(
    st.tuples(st.integers(1, 40), st.integers(1, 50_000), st.booleans()), min_size=1, max_size=25
)


def _day(n: int) -> date:
    """The n-th day from 1 October 2026 (40 days: into November, for monthly caps)."""
    return date(2026, 10, 1) + timedelta(days=n - 1)


def _from_the_start(given: list[tuple[int, int, bool]], bases: list[Basis]) -> list[int]:
    """What settlement credits these records, first of their behaviour each, in this order."""
    candidates = [
        Candidate(
            seq=seq,
            key=("p", str(seq)),
            digest=str(seq),
            citizen="c",
            scene="metro",
            day=_day(day),
            computed_g=reduction_for(Decimal(milli) * MILLI, b.per_unit),
            methodology=b.methodology,
            caps=b.caps,
        )
        for seq, ((day, milli, _), b) in enumerate(zip(given, bases, strict=True), start=1)
    ]
    return [d.reduction_g for d in settle(candidates)]


@settings(max_examples=400, deadline=None)
@given(records, caps, caps, caps, per_unit, per_unit, per_unit)
def test_restating_a_to_b_gives_what_b_gives_from_the_start(
    given: list[tuple[int, int, bool]],
    a_caps: Caps,
    b_caps: Caps,
    other_caps: Caps,
    a: Decimal,
    b: Decimal,
    other: Decimal,
) -> None:
    basis_a, basis_b = Basis("qa", "m@1.0.0", a, a_caps), Basis("qb", "m@1.0.1", b, b_caps)
    basis_other = Basis("qo", "n@1.0.0", other, other_caps)
    before = [basis_a if of_a else basis_other for _, _, of_a in given]
    after = [basis_b if of_a else basis_other for _, _, of_a in given]
    under_a = _from_the_start(given, before)
    credits = [
        Credit(seq, _day(day), milli, basis, grams)
        for seq, ((day, milli, _), basis, grams) in enumerate(
            zip(given, before, under_a, strict=True), start=1
        )
    ]
    assert settle_group(credits, lambda c: c.basis) == under_a
    changes = restate(credits, lambda c: basis_b if c.basis == basis_a else None)
    now = dict(enumerate(under_a, start=1))
    for change in changes:
        assert change.grams_before == now[change.seq]
        now[change.seq] = change.grams
    assert list(now.values()) == _from_the_start(given, after)
    # Restating what is restated changes nothing.
    restated = [Credit(c.seq, c.day, c.amount_milli, after[c.seq - 1], now[c.seq]) for c in credits]
    assert restate(restated, lambda c: basis_b if c.basis == basis_a else None) == []


def test_a_rejected_held_record_counts_until_its_decision_and_is_never_restated() -> None:
    """1 000 g a day. A held record of 234 g, rejected at seq 3, counts for seqs 1 and 2 and
    not for seq 5: seq 2 gets what remains (298 g under A, 299 g under B: seq 1 took 1 g
    less), seq 5 its whole 234 g; the held record itself is not restated."""
    a = Basis("qa", "m@1.0.0", Decimal("46.8"), Caps(day_max_g=1_000))
    b = Basis("qb", "m@1.0.1", Decimal("46.7"), Caps(day_max_g=1_000))
    day = date(2026, 10, 1)
    held = Credit(0, day, 5_000, a, 234, counts_until=3)
    credits = [
        held,
        Credit(1, day, 10_000, a, 468),
        Credit(2, day, 10_000, a, 298),
        Credit(5, day, 5_000, a, 234),
    ]
    assert settle_group(credits, lambda c: c.basis) == [234, 468, 298, 234]
    changes = restate(credits, lambda c: b)
    assert [(c.seq, c.grams_before, c.grams) for c in changes] == [
        (1, 468, 467),
        (2, 298, 299),
        (5, 234, 233),
    ]
    assert all(c.after == b for c in changes)


def test_receive_order_is_required() -> None:
    a = Basis("qa", "m@1.0.0", Decimal(1), Caps())
    with pytest.raises(ValueError, match="receive order"):
        settle_group([Credit(2, date(2026, 10, 1), 1, a, 0), Credit(1, date(2026, 10, 1), 1, a, 0)],
                     lambda c: c.basis)  # fmt: skip
