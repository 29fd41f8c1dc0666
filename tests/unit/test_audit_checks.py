"""Every invariant `ledger verify` states has its query, and every query states an invariant."""

from __future__ import annotations

from puhui.adapters.sql import audit
from puhui.service import ledger


def test_every_check_has_one_query() -> None:
    assert list(audit.QUERIES) == list(ledger.CHECKS)
