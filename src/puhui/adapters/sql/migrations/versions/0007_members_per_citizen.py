"""statistics remember the values a citizen is counted in as one row per citizen

`tally_members` held a row per value of `all`, `platform`, `region`, `province` and `scene` and
citizen counted in it: five rows or more for every citizen. It now holds one row per citizen,
its values as sorted `dimension=key` entries. The rows are recounted from the stored records,
as before, so the tallies themselves do not change.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from puhui.adapters.sql import tallies

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_table("tally_members")
    op.create_table(
        "tally_members",
        sa.Column("subject_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column(
            "counted",
            sa.Text(),
            nullable=False,
            comment="the values the citizen is counted in: sorted 'dimension=key', comma-separated",
        ),
        sa.PrimaryKeyConstraint("subject_id", name=op.f("pk_tally_members")),
    )
    tallies.rebuild_members(op.get_bind())


def downgrade() -> None:
    bind = op.get_bind()
    counted = bind.execute(sa.text("select subject_id, counted from tally_members")).all()
    op.drop_table("tally_members")
    members = op.create_table(
        "tally_members",
        sa.Column("dimension", sa.String(12), nullable=False),
        sa.Column("key", sa.String(40), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("dimension", "key", "subject_id", name=op.f("pk_tally_members")),
        sqlite_with_rowid=False,
    )
    rows = [
        {"dimension": dimension, "key": key, "subject_id": subject}
        for subject, entries in counted
        for dimension, _, key in (entry.partition("=") for entry in entries.split(",") if entry)
    ]
    if rows:
        op.bulk_insert(members, rows)
