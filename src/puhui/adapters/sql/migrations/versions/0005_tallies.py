"""statistics kept as records are settled: tallies and their members

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 18:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from puhui.adapters.sql import tallies

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tallies",
        sa.Column("dimension", sa.String(12), nullable=False),
        sa.Column(
            "key",
            sa.String(40),
            nullable=False,
            comment="'' (all), platform id, 'reporter>first' platform ids (pair), region, "
            "province, scene, YYYY-MM-DD (day) or YYYY-MM (month), Asia/Shanghai",
        ),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("grams", sa.BigInteger(), nullable=False, comment="credited"),
        sa.Column(
            "participants",
            sa.BigInteger(),
            nullable=False,
            comment="distinct citizens credited, on the row of status credited and reason ''",
        ),
        sa.CheckConstraint(
            "dimension in ('all', 'platform', 'pair', 'region', 'province', 'scene', 'day', "
            "'month')",
            name=op.f("ck_tallies_dimension"),
        ),
        sa.PrimaryKeyConstraint("dimension", "key", "status", "reason", name=op.f("pk_tallies")),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "tally_members",
        sa.Column("dimension", sa.String(12), nullable=False),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dimension", "key", "subject_id", name=op.f("pk_tally_members")),
        sqlite_with_rowid=False,
    )
    # Count the records stored before: the same statements as settlement, over all of them.
    # The members are counted by 0007, in the shape they have had since.
    tallies.rebuild_counts(op.get_bind())


def downgrade() -> None:
    op.drop_table("tally_members")
    op.drop_table("tallies")
