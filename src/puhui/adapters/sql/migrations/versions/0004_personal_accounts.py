"""personal carbon accounts: points programmes, rewards, operations

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 15:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_KIND_BEFORE = (
    "(kind = 'citizen' and subject_id is not null) or "
    "(kind = 'issuance' and platform_id is not null and methodology is not null)"
)
_KIND_AFTER = (
    "(kind = 'citizen' and subject_id is not null and unit = 'g') or "
    "(kind = 'issuance' and platform_id is not null and methodology is not null "
    "and unit = 'g') or "
    "(kind in ('points', 'programme', 'expired', 'retired', 'reward') and code is not null)"
)


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("code", sa.String(160), nullable=True, comment="the other kinds")
        )
        batch.add_column(
            sa.Column(
                "owner_id",
                sa.Integer(),
                nullable=True,
                comment="points and retired: the citizen's id",
            )
        )
        batch.add_column(
            sa.Column(
                "unit",
                sa.String(2),
                server_default=sa.text("'g'"),
                nullable=False,
                comment="g or pt",
            )
        )
        batch.alter_column(
            "kind",
            existing_type=sa.String(16),
            existing_nullable=False,
            comment="citizen, issuance, points, programme, expired, retired, reward",
            existing_comment="citizen or issuance",
        )
        batch.drop_constraint(batch.f("ck_accounts_kind"), type_="check")
        batch.create_check_constraint("kind", _KIND_AFTER)
        batch.create_check_constraint("unit", "unit in ('g', 'pt')")
        batch.create_unique_constraint(batch.f("uq_accounts_code"), ["code"])
        batch.create_index(batch.f("ix_accounts_owner_id"), ["owner_id"])

    if op.get_bind().dialect.name == "sqlite":
        # Credits were stamped in the driver's format ('…00:00:00+00:00'); SQLAlchemy's is
        # '…00:00:00.000000' (UTC). One format, so that times compare as text.
        op.execute(
            "update entries set created_at = substr(created_at, 1, 19) || '.000000' "
            "where length(created_at) = 25 and substr(created_at, 20) = '+00:00'"
        )
        op.execute(
            "update entries set created_at = substr(created_at, 1, 26) "
            "where length(created_at) = 32 and substr(created_at, 27) = '+00:00'"
        )

    # Entry ids are assigned by the database from now on: a sequence on PostgreSQL (SQLite's
    # integer primary key is its rowid already).
    if op.get_bind().dialect.name == "postgresql":
        op.execute("create sequence entries_id_seq owned by entries.id")
        op.execute(
            "select setval('entries_id_seq', coalesce((select max(id) from entries), 0) + 1, false)"
        )
        op.execute("alter table entries alter column id set default nextval('entries_id_seq')")
    with op.batch_alter_table("entries") as batch:
        batch.add_column(
            sa.Column(
                "operation_id",
                sa.Integer(),
                nullable=True,
                comment="the citizen operation it records",
            )
        )
        batch.add_column(
            sa.Column("reverses", sa.BigInteger(), nullable=True, comment="entry it reverses")
        )
        batch.add_column(
            sa.Column(
                "expires_at", sa.DateTime(timezone=True), nullable=True, comment="points awarded"
            )
        )
        batch.create_unique_constraint(batch.f("uq_entries_reverses"), ["reverses"])
        batch.create_index(batch.f("ix_entries_operation_id"), ["operation_id"])

    op.create_table(
        "programmes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column(
            "platform_id",
            sa.Integer(),
            nullable=True,
            comment="the platform running it; null: the exchange's own",
        ),
        sa.Column(
            "points_per_kg",
            sa.Numeric(18, 6),
            nullable=False,
            comment="points per 1 000 g credited",
        ),
        sa.Column(
            "expiry_days", sa.Integer(), nullable=True, comment="points expire after; null: never"
        ),
        sa.Column(
            "starts_at",
            sa.DateTime(timezone=True),
            nullable=False,
            comment="credits from this moment on earn points",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("points_per_kg > 0", name=op.f("ck_programmes_rate")),
        sa.CheckConstraint(
            "expiry_days is null or expiry_days > 0", name=op.f("ck_programmes_expiry")
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"], ["platforms.id"], name=op.f("fk_programmes_platform_id_platforms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_programmes")),
        sa.UniqueConstraint("code", name=op.f("uq_programmes_code")),
    )
    op.create_table(
        "awards",
        sa.Column("programme_id", sa.Integer(), nullable=False),
        sa.Column("credit_entry_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "award_entry_id",
            sa.BigInteger(),
            nullable=True,
            comment="null: the credit earned 0 points",
        ),
        sa.Column(
            "points", sa.BigInteger(), nullable=False, comment="what the credit earned, floored"
        ),
        sa.PrimaryKeyConstraint("programme_id", "credit_entry_id", name=op.f("pk_awards")),
    )
    op.create_table(
        "rewards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False, comment="coupon, tree or donation"),
        sa.Column("issuer", sa.Text(), nullable=False, comment="the merchant, platform or project"),
        sa.Column("project", sa.Text(), nullable=True, comment="planting or donation project"),
        sa.Column("price_g", sa.BigInteger(), nullable=True),
        sa.Column("price_points", sa.BigInteger(), nullable=True),
        sa.Column("programme_id", sa.Integer(), nullable=True, comment="whose points pay for it"),
        sa.Column(
            "stock", sa.Integer(), nullable=True, comment="made available so far; null: unlimited"
        ),
        sa.Column("remaining", sa.Integer(), nullable=True),
        sa.Column(
            "issued",
            sa.Integer(),
            server_default=sa.text("0"),
            nullable=False,
            comment="redeemed so far",
        ),
        sa.Column("per_citizen_limit", sa.Integer(), nullable=True),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_to", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind in ('coupon', 'tree', 'donation')", name=op.f("ck_rewards_kind")),
        sa.CheckConstraint(
            "(price_g > 0 and price_points is null and programme_id is null) or "
            "(price_points > 0 and price_g is null and programme_id is not null)",
            name=op.f("ck_rewards_price"),
        ),
        sa.CheckConstraint(
            "(stock is null and remaining is null) or (remaining >= 0 and remaining <= stock)",
            name=op.f("ck_rewards_stock"),
        ),
        sa.CheckConstraint(
            "kind <> 'coupon' or stock is not null", name=op.f("ck_rewards_coupon_stock")
        ),
        sa.CheckConstraint(
            "per_citizen_limit is null or per_citizen_limit > 0", name=op.f("ck_rewards_limit")
        ),
        sa.ForeignKeyConstraint(
            ["programme_id"], ["programmes.id"], name=op.f("fk_rewards_programme_id_programmes")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rewards")),
        sa.UniqueConstraint("code", name=op.f("uq_rewards_code")),
    )
    op.create_table(
        "reward_codes",
        sa.Column("reward_id", sa.Integer(), nullable=False),
        sa.Column("ordinal", sa.Integer(), nullable=False, comment="handed out in this order"),
        sa.Column("code", sa.String(128), nullable=False),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["rewards.id"], name=op.f("fk_reward_codes_reward_id_rewards")
        ),
        sa.PrimaryKeyConstraint("reward_id", "ordinal", name=op.f("pk_reward_codes")),
        sa.UniqueConstraint("reward_id", "code", name=op.f("uq_reward_codes_reward_id_code")),
    )
    op.create_table(
        "operations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subject_id", sa.Integer(), nullable=False, comment="the citizen it is about"),
        sa.Column(
            "idempotency_key", sa.String(128), nullable=False, comment="chosen by the client"
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "request_digest", sa.String(64), nullable=False, comment="SHA-256 of the request"
        ),
        sa.Column("reward_id", sa.Integer(), nullable=True),
        sa.Column("actor", sa.String(80), nullable=False, comment="who asked: platform or staff"),
        sa.Column("result", sa.Text(), nullable=False, comment="JSON: what was done"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind in ('redeem', 'retire', 'transfer', 'reverse')", name=op.f("ck_operations_kind")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_operations")),
        sa.UniqueConstraint(
            "subject_id", "idempotency_key", name=op.f("uq_operations_subject_id_idempotency_key")
        ),
    )
    op.create_index(
        op.f("ix_operations_subject_id_reward_id"),
        "operations",
        ["subject_id", "reward_id"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_operations_subject_id_reward_id"), table_name="operations")
    op.drop_table("operations")
    op.drop_table("reward_codes")
    op.drop_table("rewards")
    op.drop_table("awards")
    op.drop_table("programmes")
    with op.batch_alter_table("entries") as batch:
        batch.drop_index(batch.f("ix_entries_operation_id"))
        batch.drop_constraint(batch.f("uq_entries_reverses"), type_="unique")
        batch.drop_column("expires_at")
        batch.drop_column("reverses")
        batch.drop_column("operation_id")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("alter table entries alter column id drop default")
        op.execute("drop sequence entries_id_seq")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_index(batch.f("ix_accounts_owner_id"))
        batch.drop_constraint(batch.f("uq_accounts_code"), type_="unique")
        batch.drop_constraint(batch.f("ck_accounts_unit"), type_="check")
        batch.drop_constraint(batch.f("ck_accounts_kind"), type_="check")
        batch.create_check_constraint("kind", _KIND_BEFORE)
        batch.drop_column("unit")
        batch.drop_column("owner_id")
        batch.drop_column("code")
        batch.alter_column(
            "kind",
            existing_type=sa.String(16),
            existing_nullable=False,
            comment="citizen or issuance",
            existing_comment="citizen, issuance, points, programme, expired, retired, reward",
        )
