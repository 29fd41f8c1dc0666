"""Consent: citizens' grants to member platforms, sign-in codes and authorization codes.

`consent_events` is the consent ledger: a grant (scopes, expiry) or a revocation per row,
appended and never changed; triggers refuse an UPDATE or a DELETE on both databases.
`redirect_uris` holds where each member platform's authorizations may send the citizen back;
`sign_in_codes`, `authorization_codes` and `refresh_tokens` keep one-time codes and tokens by
their keyed digests only.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels = None
depends_on = None

APPEND_ONLY = "consent_events"


def upgrade() -> None:
    op.create_table(
        "redirect_uris",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column(
            "uri",
            sa.Text(),
            nullable=False,
            comment="where an authorization may send the citizen back",
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform_id"], ["platforms.id"], name=op.f("fk_redirect_uris_platform_id_platforms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_redirect_uris")),
        sa.UniqueConstraint("platform_id", "uri", name=op.f("uq_redirect_uris_platform_id_uri")),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column(
            "subject_id",
            sa.Integer(),
            nullable=False,
            comment="the citizen (an erased citizen's subject no longer leads to any number)",
        ),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=True, comment="space-separated; grants only"),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True, comment="grants only"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False, comment="citizen, or operator:<name>"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.CheckConstraint("kind in ('grant', 'revoke')", name=op.f("ck_consent_events_kind")),
        sa.CheckConstraint(
            "kind = 'revoke' or (scopes is not null and expires_at is not null)",
            name=op.f("ck_consent_events_grant_fields"),
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"], ["platforms.id"], name=op.f("fk_consent_events_platform_id_platforms")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_consent_events_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    op.create_index("ix_consent_events_grant_id", "consent_events", ["grant_id"])
    op.create_index("ix_consent_events_subject_id", "consent_events", ["subject_id"])
    op.create_table(
        "sign_in_codes",
        sa.Column("challenge", sa.String(length=64), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False, comment="HMAC-SHA256, hex"),
        sa.Column(
            "code_digest",
            sa.String(length=64),
            nullable=False,
            comment="keyed with consent-codes, hex",
        ),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("challenge", name=op.f("pk_sign_in_codes")),
    )
    op.create_index("ix_sign_in_codes_pseudonym", "sign_in_codes", ["pseudonym", "created_at"])
    op.create_table(
        "authorization_codes",
        sa.Column(
            "code_digest",
            sa.String(length=64),
            nullable=False,
            comment="keyed with consent-codes, hex",
        ),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=False),
        sa.Column("redirect_uri", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("code_challenge", sa.String(length=128), nullable=False),
        sa.Column("code_challenge_method", sa.String(length=8), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["platforms.id"],
            name=op.f("fk_authorization_codes_platform_id_platforms"),
        ),
        sa.PrimaryKeyConstraint("code_digest", name=op.f("pk_authorization_codes")),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column(
            "token_digest",
            sa.String(length=64),
            nullable=False,
            comment="keyed with consent-codes, hex",
        ),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("grant_id", sa.String(length=40), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "expires_at", sa.DateTime(timezone=True), nullable=False, comment="the grant's expiry"
        ),
        sa.Column(
            "used_at", sa.DateTime(timezone=True), nullable=True, comment="exchanged: one use"
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"],
            ["platforms.id"],
            name=op.f("fk_refresh_tokens_platform_id_platforms"),
        ),
        sa.PrimaryKeyConstraint("token_digest", name=op.f("pk_refresh_tokens")),
    )
    _append_only(APPEND_ONLY)


def downgrade() -> None:
    _drop_append_only(APPEND_ONLY)
    op.drop_table("refresh_tokens")
    op.drop_table("authorization_codes")
    op.drop_index("ix_sign_in_codes_pseudonym", table_name="sign_in_codes")
    op.drop_table("sign_in_codes")
    op.drop_index("ix_consent_events_subject_id", table_name="consent_events")
    op.drop_index("ix_consent_events_grant_id", table_name="consent_events")
    op.drop_table("consent_events")
    op.drop_table("redirect_uris")


def _append_only(table: str) -> None:
    """Refuse every UPDATE and DELETE of a table's rows (`<table>_append_only_update`,
    `<table>_append_only_delete`)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"create function {table}_append_only() returns trigger language plpgsql as $$ "
            f"begin raise exception '{table} is append-only: % refused', tg_op "
            "using errcode = 'restrict_violation'; end $$"
        )
        for action in ("update", "delete"):
            op.execute(
                f"create trigger {table}_append_only_{action} before {action} on {table} "
                f"for each row execute function {table}_append_only()"
            )
    else:
        for action in ("update", "delete"):
            op.execute(
                f"create trigger {table}_append_only_{action} before {action} on {table} "
                f"begin select raise(abort, '{table} is append-only: {action} refused'); end"
            )


def _drop_append_only(table: str) -> None:
    for action in ("update", "delete"):
        op.execute(
            f"drop trigger {table}_append_only_{action}"
            + (f" on {table}" if op.get_bind().dialect.name == "postgresql" else "")
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"drop function {table}_append_only()")
