"""restatements of credits when a methodology version is corrected

- `restatements`: one per target version (`id@version`), resumed until finished;
- `restatement_postings`: what it posted per account (a citizen's, or a certified credit's
  batch buffer or pool) and platform, as one `restated` transfer each;
- `restated_credits`: each credit it changed, with its calculation and grams before and now.

Existing credits are unchanged: nothing was restated before.

Revision ID: 0017
Revises: 0016
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "restatements",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "methodology", sa.String(96), nullable=False, unique=True, comment="id@version, target"
        ),
        sa.Column(
            "superseded", sa.Text, nullable=False, comment="the id@version it restates, ', '-joined"
        ),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "finished_at", sa.DateTime(timezone=True), nullable=True, comment="null: resumable"
        ),
    )
    op.create_table(
        "restatement_postings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("restatement_id", sa.Integer, sa.ForeignKey("restatements.id"), nullable=False),
        sa.Column(
            "account_id", sa.Integer, nullable=False, comment="citizen, buffer or pool account"
        ),
        sa.Column(
            "platform_id", sa.Integer, nullable=False, comment="whose issuance account it moves"
        ),
        sa.Column("delta_g", sa.BigInteger, nullable=False, comment="the credits' change, signed"),
        sa.Column("posted_g", sa.BigInteger, nullable=False, comment="what moved, signed"),
        sa.Column("transfer_id", sa.BigInteger, nullable=True, comment="null: nothing moved"),
        sa.CheckConstraint(
            "(posted_g = 0) = (transfer_id is null) and posted_g * delta_g >= 0 "
            "and abs(posted_g) <= abs(delta_g) and (posted_g = delta_g or delta_g < 0)",
            name="posted",
        ),
    )
    op.create_index("ix_restatement_postings_transfer_id", "restatement_postings", ["transfer_id"])
    op.create_table(
        "restated_credits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("restatement_id", sa.Integer, sa.ForeignKey("restatements.id"), nullable=False),
        sa.Column("record_seq", sa.BigInteger, nullable=False),
        sa.Column(
            "posting_id", sa.Integer, sa.ForeignKey("restatement_postings.id"), nullable=True
        ),
        sa.Column("before_quantification_id", sa.Integer, nullable=False),
        sa.Column("quantification_id", sa.Integer, nullable=False, comment="the calculation now"),
        sa.Column("methodology", sa.String(96), nullable=False, comment="id@version now"),
        sa.Column("grams_before", sa.BigInteger, nullable=False),
        sa.Column("grams", sa.BigInteger, nullable=False, comment="credited now"),
        sa.Column("after_seq", sa.BigInteger, nullable=False, comment="records received before it"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("restatement_id", "record_seq"),
        sa.CheckConstraint("grams >= 0 and grams_before >= 0", name="grams"),
        sa.CheckConstraint("(grams = grams_before) = (posting_id is null)", name="posting"),
    )
    op.create_index("ix_restated_credits_record_seq", "restated_credits", ["record_seq", "id"])


def downgrade() -> None:
    op.drop_index("ix_restated_credits_record_seq", "restated_credits")
    op.drop_table("restated_credits")
    op.drop_index("ix_restatement_postings_transfer_id", "restatement_postings")
    op.drop_table("restatement_postings")
    op.drop_table("restatements")
