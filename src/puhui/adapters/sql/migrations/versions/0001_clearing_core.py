"""clearing core schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 19:33:02.421591
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False, comment="citizen or issuance"),
        sa.Column("subject_id", sa.Integer(), nullable=True, comment="citizen accounts"),
        sa.Column("platform_id", sa.Integer(), nullable=True, comment="issuance accounts"),
        sa.Column(
            "methodology",
            sa.String(length=96),
            nullable=True,
            comment="issuance accounts: id@version",
        ),
        sa.CheckConstraint(
            "(kind = 'citizen' and subject_id is not null) or (kind = 'issuance' and platform_id is not null and methodology is not null)",
            name=op.f("ck_accounts_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint(
            "platform_id", "methodology", name=op.f("uq_accounts_platform_id_methodology")
        ),
        sa.UniqueConstraint("subject_id", name=op.f("uq_accounts_subject_id")),
    )
    op.create_table(
        "balances",
        sa.Column("account_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("balance_g", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_balances")),
        postgresql_with={"fillfactor": 70},
    )
    op.create_table(
        "entries",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("record_seq", sa.BigInteger(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
        sa.UniqueConstraint("record_seq", name=op.f("uq_entries_record_seq")),
    )
    op.create_table(
        "meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_meta")),
    )
    op.create_table(
        "platforms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platforms")),
        sa.UniqueConstraint("code", name=op.f("uq_platforms_code")),
    )
    op.create_table(
        "postings",
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount_g", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_g <> 0", name=op.f("ck_postings_nonzero")),
        sa.PrimaryKeyConstraint("entry_id", "account_id", name=op.f("pk_postings")),
    )
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.create_index("ix_postings_account", ["account_id", "entry_id"], unique=False)

    op.create_table(
        "quantifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("methodology", sa.String(length=96), nullable=False, comment="id@version"),
        sa.Column("scene", sa.String(length=16), nullable=False),
        sa.Column("region", sa.String(length=6), nullable=False),
        sa.Column("material", sa.String(length=16), nullable=False),
        sa.Column("unit", sa.String(length=16), nullable=False),
        sa.Column(
            "reduction_per_unit",
            sa.Numeric(precision=24, scale=9),
            nullable=False,
            comment="g CO2e per unit",
        ),
        sa.Column(
            "trace", sa.Text(), nullable=False, comment="JSON: formulas, factors, sources, fallback"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quantifications")),
        sa.UniqueConstraint("digest", name=op.f("uq_quantifications_digest")),
    )
    op.create_table(
        "records",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
            comment="receive order",
        ),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("record_id", sa.String(length=128), nullable=False),
        sa.Column(
            "digest", sa.String(length=32), nullable=False, comment="of the normalised content"
        ),
        sa.Column("subject_id", sa.Integer(), nullable=True),
        sa.Column("scene", sa.String(length=16), nullable=True),
        sa.Column("region", sa.String(length=6), nullable=True),
        sa.Column("start_ms", sa.BigInteger(), nullable=True, comment="epoch milliseconds, UTC"),
        sa.Column("end_ms", sa.BigInteger(), nullable=True, comment="epoch milliseconds, UTC"),
        sa.Column(
            "amount_milli", sa.BigInteger(), nullable=True, comment="km, kg, count or kWh × 1000"
        ),
        sa.Column("material", sa.String(length=16), nullable=True),
        sa.Column("ref", sa.String(length=256), nullable=True, comment="trimmed, case-folded"),
        sa.Column("extra", sa.Text(), nullable=True, comment="JSON: coordinates, device"),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), server_default=sa.text("('')"), nullable=False),
        sa.Column(
            "detail", sa.Text(), nullable=True, comment="which fields were missing or ill-typed"
        ),
        sa.Column("reduction_g", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("methodology", sa.String(length=96), nullable=True),
        sa.Column("quantification_id", sa.Integer(), nullable=True),
        sa.Column(
            "duplicate_of", sa.BigInteger(), nullable=True, comment="seq of the earlier record"
        ),
        sa.CheckConstraint(
            "status = 'credited' or reduction_g = 0", name=op.f("ck_records_only_credited_earn")
        ),
        sa.CheckConstraint(
            "status in ('credited', 'duplicate', 'rejected')", name=op.f("ck_records_status")
        ),
        sa.CheckConstraint("reduction_g >= 0", name=op.f("ck_records_reduction_g")),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_records")),
        sa.UniqueConstraint(
            "platform_id", "record_id", name=op.f("uq_records_platform_id_record_id")
        ),
    )
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.create_index("ix_records_batch", ["batch_id"], unique=False)
        batch_op.create_index(
            "ix_records_scene_ref",
            ["scene", "ref"],
            unique=False,
            sqlite_where=sa.text("ref is not null and status <> 'rejected'"),
            postgresql_where=sa.text("ref is not null and status <> 'rejected'"),
        )
        batch_op.create_index("ix_records_subject_start", ["subject_id", "start_ms"], unique=False)
        batch_op.create_index(
            "uq_records_credited_ref",
            ["scene", "ref"],
            unique=True,
            sqlite_where=sa.text("ref is not null and status = 'credited'"),
            postgresql_where=sa.text("ref is not null and status = 'credited'"),
        )

    op.create_table(
        "subjects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False, comment="HMAC-SHA256, hex"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subjects")),
        sa.UniqueConstraint("pseudonym", name=op.f("uq_subjects_pseudonym")),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False, comment="file name or API call"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("credited", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("duplicate", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("rejected", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("credited_g", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"], ["platforms.id"], name=op.f("fk_batches_platform_id_platforms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_table(
        "conflicts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("record_seq", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=32), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_conflicts_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conflicts")),
    )
    op.create_table(
        "unkeyed_rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column(
            "record_id",
            sa.String(length=128),
            nullable=True,
            comment="as sent, cut to 128 characters",
        ),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_unkeyed_rejections_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unkeyed_rejections")),
    )


def downgrade() -> None:
    op.drop_table("unkeyed_rejections")
    op.drop_table("conflicts")
    op.drop_table("batches")
    op.drop_table("subjects")
    with op.batch_alter_table("records", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_records_credited_ref",
            sqlite_where=sa.text("ref is not null and status = 'credited'"),
            postgresql_where=sa.text("ref is not null and status = 'credited'"),
        )
        batch_op.drop_index("ix_records_subject_start")
        batch_op.drop_index(
            "ix_records_scene_ref",
            sqlite_where=sa.text("ref is not null and status <> 'rejected'"),
            postgresql_where=sa.text("ref is not null and status <> 'rejected'"),
        )
        batch_op.drop_index("ix_records_batch")

    op.drop_table("records")
    op.drop_table("quantifications")
    with op.batch_alter_table("postings", schema=None) as batch_op:
        batch_op.drop_index("ix_postings_account")

    op.drop_table("postings")
    op.drop_table("platforms")
    op.drop_table("meta")
    op.drop_table("entries")
    op.drop_table("balances")
    op.drop_table("accounts")
