"""held records (spec v1.1): status `held`, the review queue, pending grams, devices indexed

- `records.status` may be `held`, and a held record carries the grams it would credit;
- `records.device`: the platform's device identifier, copied out of `extra` for the records
  stored before, indexed for the fraud signals, as are each platform's records by region,
  scene and start;
- `holds`: why each held record was held, with the evidence, and how it was decided;
- accounts of kind `held`: a citizen's grams pending on held records.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels = None
depends_on = None

_STATUS = "status = 'credited' or status = 'duplicate' or status = 'rejected'"
_EARN = "status = 'credited' or reduction_g = 0"
_KIND = (
    "(kind = 'citizen' and subject_id is not null and unit = 'g') or "
    "(kind = 'issuance' and platform_id is not null and methodology is not null "
    "and unit = 'g') or "
    "(kind in ('points', 'programme', 'expired', 'retired', 'reward') and code is not null)"
)
_KINDS_COMMENT = "citizen, issuance, points, programme, expired, retired, reward"
_KIND_HELD = _KIND.replace("'reward')", "'reward', 'held')")


def upgrade() -> None:
    # On SQLite the table is copied with its indexes (partial ones with their conditions).
    with op.batch_alter_table("records") as batch:
        batch.add_column(
            sa.Column(
                "device", sa.String(128), nullable=True, comment="the platform's device identifier"
            )
        )
        batch.drop_constraint(batch.f("ck_records_status"), type_="check")
        batch.create_check_constraint("status", f"{_STATUS} or status = 'held'")
        batch.drop_constraint(batch.f("ck_records_only_credited_earn"), type_="check")
        batch.create_check_constraint(
            "only_credited_earn", "status = 'credited' or status = 'held' or reduction_g = 0"
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "update records set device = extra::json ->> 'device' "
            "where extra is not null and extra::json ->> 'device' is not null"
        )
    else:
        op.execute(
            "update records set device = json_extract(extra, '$.device') "
            "where extra is not null and json_extract(extra, '$.device') is not null"
        )
    op.create_index(
        "ix_records_platform_region_start",
        "records",
        ["platform_id", "region", "scene", "start_ms"],
    )
    op.create_index(
        "ix_records_device_start",
        "records",
        ["device", "start_ms"],
        sqlite_where=sa.text("device is not null"),
        postgresql_where=sa.text("device is not null"),
    )
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column(
            "kind",
            existing_type=sa.String(16),
            existing_nullable=False,
            comment=_KINDS_COMMENT + ", held",
        )
        batch.drop_constraint(batch.f("ck_accounts_kind"), type_="check")
        batch.create_check_constraint("kind", _KIND_HELD)
    op.create_table(
        "holds",
        sa.Column("record_seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("platform_id", sa.Integer, nullable=False),
        sa.Column(
            "reasons", sa.Text, nullable=False, comment="the codes that held it, joined by ';'"
        ),
        sa.Column("evidence", sa.Text, nullable=False, comment="JSON: what each signal measured"),
        sa.Column(
            "policy", sa.String(64), nullable=True, comment="the evidence policy it waits under"
        ),
        sa.Column("grams", sa.BigInteger, nullable=False, comment="the grams it held"),
        sa.Column("held_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "until", sa.DateTime(timezone=True), nullable=True, comment="corroboration deadline"
        ),
        sa.Column(
            "corroborated_by",
            sa.BigInteger,
            nullable=True,
            comment="seq of the authority's record",
        ),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "decided_seq",
            sa.BigInteger,
            nullable=True,
            comment="the first seq settled after the decision",
        ),
        sa.Column("outcome", sa.String(10), nullable=True, comment="credited or rejected"),
        sa.Column("outcome_reason", sa.String(32), nullable=True),
        sa.Column("decided_by", sa.Text, nullable=True, comment="the reviewer, or the policy"),
        sa.Column("note", sa.Text, nullable=True, comment="the reviewer's reason"),
        sa.CheckConstraint(
            "(decided_at is null and outcome is null) or "
            "(decided_at is not null and outcome in ('credited', 'rejected') "
            "and decided_by is not null)",
            name=op.f("ck_holds_decided"),
        ),
        sa.PrimaryKeyConstraint("record_seq", name=op.f("pk_holds")),
    )
    op.create_index(
        "ix_holds_open",
        "holds",
        ["held_at"],
        sqlite_where=sa.text("decided_at is null"),
        postgresql_where=sa.text("decided_at is null"),
    )
    op.create_index("ix_holds_platform_decided", "holds", ["platform_id", "decided_at"])


def downgrade() -> None:
    op.drop_index("ix_holds_platform_decided", table_name="holds")
    op.drop_index("ix_holds_open", table_name="holds")
    op.drop_table("holds")
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column(
            "kind", existing_type=sa.String(16), existing_nullable=False, comment=_KINDS_COMMENT
        )
        batch.drop_constraint(batch.f("ck_accounts_kind"), type_="check")
        batch.create_check_constraint("kind", _KIND)
    op.drop_index("ix_records_device_start", table_name="records")
    op.drop_index("ix_records_platform_region_start", table_name="records")
    with op.batch_alter_table("records") as batch:
        batch.drop_constraint(batch.f("ck_records_only_credited_earn"), type_="check")
        batch.create_check_constraint("only_credited_earn", _EARN)
        batch.drop_constraint(batch.f("ck_records_status"), type_="check")
        batch.create_check_constraint("status", _STATUS)
        batch.drop_column("device")
