"""Erasure: a citizen erased, their behaviour details gone, their amounts kept anonymous.

`erasures` records each erasure (`domain.erasure`): when, by whom, on what grounds, how many
records lost their details, and the account left without an owner. No existing row changes.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column(
            "subject_id", sa.Integer, nullable=False, comment="the account left without an owner"
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("by_role", sa.String(16), nullable=False, comment="citizen or operator"),
        sa.Column("grounds", sa.Text, nullable=False, comment="why; never an identifier"),
        sa.Column(
            "records", sa.BigInteger, nullable=False, comment="records whose details were deleted"
        ),
        sa.CheckConstraint("by_role in ('citizen', 'operator')", name=op.f("ck_erasures_by_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasures")),
    )


def downgrade() -> None:
    op.drop_table("erasures")
