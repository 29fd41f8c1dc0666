"""the common mechanism across nodes: a node's link to the registry, the registry's claims

- a node's side: `federation_link` (the registry it registers with, from which record on),
  `federation_outbox` (each batch as signed and sent, and the answer) and `federation_claims`
  (each record's claim and the registry's verdict);
- the registry's side: `common_nodes`, `common_batches` (each node's batches with the answer
  given), `common_claims` (every claim of every node, in global order) and
  `common_certifications` (which claims' credits each node certified into units);
- a held record may end as a duplicate (`holds.outcome`): the registry answered that another
  node's record of its behaviour came first.

Existing records are not registered: a node registers what it settles after joining.

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels = None
depends_on = None


def _decided(outcomes: str) -> str:
    return (
        "(decided_at is null and outcome is null) or "
        f"(decided_at is not null and outcome in ({outcomes}) "
        "and decided_by is not null)"
    )


def upgrade() -> None:
    with op.batch_alter_table("holds") as batch:
        batch.alter_column(
            "outcome",
            existing_type=sa.String(10),
            existing_nullable=True,
            comment="credited, rejected or duplicate",
        )
        batch.drop_constraint(batch.f("ck_holds_decided"), type_="check")
        batch.create_check_constraint("decided", _decided("'credited', 'rejected', 'duplicate'"))
    op.create_table(
        "federation_link",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("node", sa.String(16), nullable=False, comment="this node's code"),
        sa.Column("url", sa.Text, nullable=False, comment="the registry's base URL"),
        sa.Column(
            "registry_key", sa.String(64), nullable=False, comment="its Ed25519 public key, hex"
        ),
        sa.Column(
            "joined_seq", sa.BigInteger, nullable=False, comment="the first record registered"
        ),
        sa.Column(
            "through_seq", sa.BigInteger, nullable=False, comment="records sent up to this seq"
        ),
        sa.Column("next_batch", sa.Integer, nullable=False, comment="the number of the next batch"),
        sa.Column(
            "certified_batch",
            sa.Integer,
            nullable=False,
            server_default=sa.text("0"),
            comment="certified credits sent up to this batch of units…",
        ),
        sa.Column(
            "certified_position",
            sa.Integer,
            nullable=False,
            server_default=sa.text("-1"),
            comment="…and this leaf of it",
        ),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_federation_link_one")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_federation_link")),
    )
    op.create_table(
        "federation_outbox",
        sa.Column("number", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("body", sa.Text, nullable=False, comment="the batch exactly as signed"),
        sa.Column("events", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answer", sa.Text, nullable=True, comment="the registry's answer, as signed"),
        sa.Column("signature", sa.String(128), nullable=True, comment="the registry's, hex"),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_federation_outbox")),
    )
    op.create_table(
        "federation_claims",
        sa.Column("record_seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("claim_id", sa.String(40), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("withdrawn_in", sa.Integer, nullable=True, comment="the batch that withdrew it"),
        sa.Column(
            "position", sa.BigInteger, nullable=True, comment="in the registry's global order"
        ),
        sa.Column("verdict", sa.String(10), nullable=True, comment="first or duplicate"),
        sa.Column("reasons", sa.Text, nullable=True),
        sa.Column("of_node", sa.String(16), nullable=True),
        sa.Column("of_claim", sa.String(40), nullable=True),
        sa.Column(
            "certified", sa.Integer, nullable=False, server_default=sa.text("0"), comment="batches"
        ),
        sa.Column("certify_refused", sa.String(32), nullable=True, comment="the registry's reason"),
        sa.CheckConstraint(
            "verdict is null or verdict in ('first', 'duplicate')",
            name=op.f("ck_federation_claims_verdict"),
        ),
        sa.PrimaryKeyConstraint("record_seq", name=op.f("pk_federation_claims")),
        sa.UniqueConstraint("claim_id", name=op.f("uq_federation_claims_claim_id")),
    )
    op.create_index("ix_federation_claims_batch", "federation_claims", ["batch"])
    op.create_table(
        "common_nodes",
        sa.Column("code", sa.String(16), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("public_key", sa.String(64), nullable=False, comment="Ed25519, hex"),
        sa.Column("fingerprint", sa.String(32), nullable=False, comment="of its claims key"),
        sa.Column("next_batch", sa.Integer, nullable=False, server_default=sa.text("1")),
        sa.Column(
            "tallies",
            sa.Text,
            nullable=False,
            server_default=sa.text("'{}'"),
            comment="JSON, latest",
        ),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_common_nodes")),
    )
    op.create_table(
        "common_batches",
        sa.Column("node", sa.String(16), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, comment="SHA-256 of the batch, hex"),
        sa.Column("answer", sa.Text, nullable=False, comment="the answer, exactly as signed"),
        sa.Column("signature", sa.String(128), nullable=False, comment="the registry's, hex"),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node", "number", name=op.f("pk_common_batches")),
    )
    op.create_table(
        "common_claims",
        sa.Column(
            "position",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
            comment="global order",
        ),
        sa.Column("node", sa.String(16), nullable=False),
        sa.Column("claim_id", sa.String(40), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.Column("ref", sa.String(64), nullable=True),
        sa.Column("citizen", sa.String(64), nullable=True),
        sa.Column("start_ms", sa.BigInteger, nullable=True),
        sa.Column("end_ms", sa.BigInteger, nullable=True),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("reasons", sa.Text, nullable=False, server_default=sa.text("''")),
        sa.Column("of_position", sa.BigInteger, nullable=True),
        sa.Column(
            "withdrawn_at", sa.BigInteger, nullable=True, comment="the position it stopped at"
        ),
        sa.CheckConstraint(
            "verdict in ('first', 'duplicate')", name=op.f("ck_common_claims_verdict")
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_common_claims")),
        sa.UniqueConstraint("node", "claim_id", name=op.f("uq_common_claims_node_claim_id")),
    )
    op.create_index("ix_common_claims_ref", "common_claims", ["ref"])
    op.create_index("ix_common_claims_citizen_start", "common_claims", ["citizen", "start_ms"])
    op.create_table(
        "common_certifications",
        sa.Column("node", sa.String(16), nullable=False),
        sa.Column("claim_id", sa.String(40), nullable=False),
        sa.Column(
            "root", sa.String(64), nullable=False, comment="the batch of units' Merkle root, hex"
        ),
        sa.Column(
            "batch", sa.Integer, nullable=False, comment="the node's batch that registered it"
        ),
        sa.PrimaryKeyConstraint("node", "claim_id", "root", name=op.f("pk_common_certifications")),
    )


def downgrade() -> None:
    op.drop_table("common_certifications")
    op.drop_table("common_claims")
    op.drop_table("common_batches")
    op.drop_table("common_nodes")
    op.drop_table("federation_claims")
    op.drop_table("federation_outbox")
    op.drop_table("federation_link")
    with op.batch_alter_table("holds") as batch:
        batch.alter_column(
            "outcome",
            existing_type=sa.String(10),
            existing_nullable=True,
            comment="credited or rejected",
        )
        batch.drop_constraint(batch.f("ck_holds_decided"), type_="check")
        batch.create_check_constraint("decided", _decided("'credited', 'rejected'"))
