"""platform credentials and request nonces

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column(
            "secret_digest",
            sa.String(length=64),
            nullable=False,
            comment="SHA-256 of the secret, hex",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["platform_id"], ["platforms.id"], name=op.f("fk_credentials_platform_id_platforms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("key_id", name=op.f("uq_credentials_key_id")),
    )
    op.create_table(
        "request_nonces",
        sa.Column("key_id", sa.String(length=40), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("seen_ms", sa.BigInteger(), nullable=False, comment="epoch milliseconds"),
        sa.PrimaryKeyConstraint("key_id", "nonce", name=op.f("pk_request_nonces")),
    )
    op.create_index(op.f("ix_request_nonces_seen_ms"), "request_nonces", ["seen_ms"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_request_nonces_seen_ms"), table_name="request_nonces")
    op.drop_table("request_nonces")
    op.drop_table("credentials")
