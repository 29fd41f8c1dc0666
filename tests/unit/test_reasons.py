"""The receipt vocabulary: three statuses and stable, documented reason codes."""

from __future__ import annotations

import re

from puhui.domain import rules
from puhui.domain.reasons import DESCRIPTIONS, Reason, Status, join


def test_a_receipt_is_credited_duplicate_rejected_or_held() -> None:
    """The three statuses of the spec and v1.1's `held`, spelled as receipts carry them."""
    assert [s.value for s in Status] == ["credited", "duplicate", "rejected", "held"]


def test_every_reason_has_a_description() -> None:
    """docs/reasons.md is generated from DESCRIPTIONS: no code may be left out."""
    assert set(DESCRIPTIONS) == set(Reason)
    for reason, text in DESCRIPTIONS.items():
        assert text.strip(), reason
        assert text.endswith("."), reason


def test_reason_codes_are_distinct_lowercase_words() -> None:
    """Codes are stable identifiers: snake case, no `;` (the separator), no repeats."""
    codes = [r.value for r in Reason]
    assert len(set(codes)) == len(codes)
    for code in codes:
        assert re.fullmatch(r"[a-z][a-z_]*[a-z]", code), code


def test_the_codes_platforms_rely_on_keep_their_spelling() -> None:
    """A few codes named by the spec and the methodology pages."""
    assert Reason.CONFLICT == "conflict"
    assert Reason.DUPLICATE_REF == "duplicate_ref"
    assert Reason.DUPLICATE_OVERLAP == "duplicate_overlap"
    assert Reason.CAPPED == "capped"
    assert Reason.NO_METHODOLOGY == "no_methodology"
    assert Reason.MALFORMED_ROW == "malformed_row"


def test_every_plausibility_rule_is_a_documented_reason() -> None:
    """Each registered rule has a reason code with a description and a docstring of its own."""
    assert set(rules.RULES) == {
        Reason.NON_POSITIVE_DURATION,
        Reason.SPEED_IMPLAUSIBLE,
        Reason.DISTANCE_BELOW_STRAIGHT_LINE,
        Reason.TRIP_TOO_LONG,
    }
    for code, rule in rules.RULES.items():
        assert rule.code is code
        assert code in DESCRIPTIONS
        assert rule.doc


def test_reasons_are_joined_in_order_without_repeats_or_blanks() -> None:
    """Every failed check is reported once, in the order found."""
    assert join(["unknown_region", "", "malformed_subject", "unknown_region"]) == (
        "unknown_region;malformed_subject"
    )
    assert join([]) == ""
    assert join(["capped"]) == "capped"
