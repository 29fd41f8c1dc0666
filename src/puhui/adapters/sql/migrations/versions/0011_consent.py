"""Consent: citizens' grants to member platforms, sign-in codes and authorization codes.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
