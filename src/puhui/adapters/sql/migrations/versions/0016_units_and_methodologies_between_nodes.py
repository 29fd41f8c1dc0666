"""units and methodology versions between the nodes

- a node's side: `unit_batches.imported` (a batch another node issued, whose units came into
  this registry; its serial numbers are that node's, so they are unique per exchange now),
  units held `abroad` (`unit_blocks.node`: sent to another node's registry), the moves `export`,
  `import`, `return` and `recognise`, `federation_sends` (each transfer sent to the registry),
  and on `federation_link` what was registered and received, and the registry's latest figures;
- the registry's side: `common_unit_batches`, `common_unit_blocks` (which node's registry holds
  each unit) and `common_transfers` (every move between nodes, numbered);
- the shared methodology catalogue: `federation_methodologies` (what a node registered),
  `common_methodologies` and `common_methodology_nodes` (the registry's).

Existing batches are the node's own; existing units stay where they are.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels = None
depends_on = None

_OPERATIONS = "'certify', 'sell', 'transfer', 'retire', 'reverse'"
_MOVES = "'issue', 'sell', 'transfer', 'retire', 'cancel'"
_HOLDERS = "'exchange', 'company', 'buffer', 'retired', 'cancelled'"
_OWNER = (
    "(holder in ('company', 'retired')) = (company_id is not null) "
    "and (holder = 'retired') = (retirement_id is not null)"
)


def upgrade() -> None:
    with op.batch_alter_table("market_operations") as batch:
        batch.drop_constraint(batch.f("ck_market_operations_kind"), type_="check")
        batch.create_check_constraint(
            "kind", f"kind in ({_OPERATIONS}, 'export', 'import', 'return')"
        )
    with op.batch_alter_table("unit_batches") as batch:
        batch.add_column(
            sa.Column(
                "imported",
                sa.Boolean,
                nullable=False,
                server_default=sa.false(),
                comment="issued by another node (exchange): its credits and grams are there",
            )
        )
        batch.alter_column(
            "units_account_id",
            existing_type=sa.Integer,
            nullable=True,
            comment="null: imported",
        )
        batch.alter_column(
            "buffer_account_id",
            existing_type=sa.Integer,
            nullable=True,
            comment="null: imported",
        )
        batch.drop_constraint(batch.f("uq_unit_batches_first_serial"), type_="unique")
        batch.create_unique_constraint(
            batch.f("uq_unit_batches_exchange_first_serial"), ["exchange", "first_serial"]
        )
        batch.create_check_constraint(
            "imported",
            "(units_account_id is null) = imported and (buffer_account_id is null) = imported "
            "and (not imported or (leaves = 0 and buffer_units = 0))",
        )
    with op.batch_alter_table("unit_blocks") as batch:
        batch.add_column(
            sa.Column(
                "node",
                sa.String(16),
                nullable=True,
                comment="abroad: the node they went to or are at",
            )
        )
        batch.alter_column(
            "holder",
            existing_type=sa.String(10),
            existing_nullable=False,
            comment="exchange, company, buffer, retired, cancelled, abroad",
        )
        batch.drop_constraint(batch.f("ck_unit_blocks_holder"), type_="check")
        batch.create_check_constraint("holder", f"holder in ({_HOLDERS}, 'abroad')")
        batch.drop_constraint(batch.f("ck_unit_blocks_owner"), type_="check")
        batch.create_check_constraint(
            "owner", f"{_OWNER} and (holder = 'abroad') = (node is not null)"
        )
    with op.batch_alter_table("unit_moves") as batch:
        batch.add_column(
            sa.Column(
                "node", sa.String(16), nullable=True, comment="to or from another node's registry"
            )
        )
        batch.drop_constraint(batch.f("ck_unit_moves_kind"), type_="check")
        batch.create_check_constraint(
            "kind", f"kind in ({_MOVES}, 'export', 'import', 'return', 'recognise')"
        )
    _moves_append_only()
    with op.batch_alter_table("federation_link") as batch:
        batch.add_column(
            sa.Column(
                "issued_through",
                sa.Integer,
                nullable=False,
                server_default=sa.text("0"),
                comment="batches of units registered up to this one",
            )
        )
        batch.add_column(
            sa.Column(
                "inbox_through",
                sa.BigInteger,
                nullable=False,
                server_default=sa.text("0"),
                comment="units received up to this move of the registry",
            )
        )
        batch.add_column(
            sa.Column(
                "oversight", sa.Text, nullable=True, comment="JSON: the registry's latest figures"
            )
        )
        batch.add_column(sa.Column("oversight_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "federation_sends",
        sa.Column("transfer", sa.Integer, autoincrement=False, nullable=False, comment="1, 2, …"),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("first", sa.BigInteger, nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
        sa.Column("company_id", sa.Integer, nullable=False, comment="sender"),
        sa.Column("to_node", sa.String(16), nullable=False),
        sa.Column(
            "to_company", sa.String(18), nullable=False, comment="unified social credit code"
        ),
        sa.Column("to_name", sa.Text, nullable=False),
        sa.Column(
            "sent_in",
            sa.Integer,
            nullable=True,
            comment="the batch of the protocol that sent it",
        ),
        sa.Column("refused", sa.String(32), nullable=True, comment="the registry's reason"),
        sa.CheckConstraint('"first" <= "last"', name=op.f("ck_federation_sends_range")),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["market_operations.id"],
            name=op.f("fk_federation_sends_operation_id_market_operations"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["unit_batches.id"],
            name=op.f("fk_federation_sends_batch_id_unit_batches"),
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_federation_sends_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("transfer", name=op.f("pk_federation_sends")),
    )
    op.create_table(
        "federation_methodologies",
        sa.Column("ref", sa.String(96), nullable=False, comment="id@version"),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column(
            "batch", sa.Integer, nullable=False, comment="the batch of the protocol that sent it"
        ),
        sa.Column("verdict", sa.String(10), nullable=True, comment="added, recognised or differs"),
        sa.PrimaryKeyConstraint("ref", "fingerprint", name=op.f("pk_federation_methodologies")),
    )
    op.create_table(
        "common_methodologies",
        sa.Column("ref", sa.String(96), nullable=False, comment="id@version"),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("node", sa.String(16), nullable=False, comment="the node that added it"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("ref", name=op.f("pk_common_methodologies")),
    )
    op.create_table(
        "common_methodology_nodes",
        sa.Column("node", sa.String(16), nullable=False),
        sa.Column("ref", sa.String(96), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(10), nullable=False),
        sa.Column("batch", sa.Integer, nullable=False),
        sa.CheckConstraint(
            "verdict in ('added', 'recognised', 'differs')",
            name=op.f("ck_common_methodology_nodes_verdict"),
        ),
        sa.PrimaryKeyConstraint(
            "node", "ref", "fingerprint", name=op.f("pk_common_methodology_nodes")
        ),
    )
    op.create_table(
        "common_unit_batches",
        sa.Column("origin", sa.String(16), nullable=False, comment="the node that issued it"),
        sa.Column("root", sa.String(64), nullable=False, comment="its Merkle root, hex"),
        sa.Column("methodology", sa.String(96), nullable=False),
        sa.Column("region", sa.String(6), nullable=False),
        sa.Column("vintage", sa.String(7), nullable=False),
        sa.Column("first", sa.BigInteger, nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
        sa.Column(
            "batch", sa.Integer, nullable=False, comment="the node's batch that registered it"
        ),
        sa.PrimaryKeyConstraint("origin", "root", name=op.f("pk_common_unit_batches")),
    )
    op.create_table(
        "common_unit_blocks",
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("first", sa.BigInteger, nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
        sa.Column("node", sa.String(16), nullable=False, comment="whose registry holds them"),
        sa.PrimaryKeyConstraint("origin", "root", "first", name=op.f("pk_common_unit_blocks")),
    )
    op.create_table(
        "common_transfers",
        sa.Column(
            "number",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=False,
            nullable=False,
            comment="the registry's",
        ),
        sa.Column("sender", sa.String(16), nullable=False),
        sa.Column("transfer", sa.Integer, nullable=False, comment="the sender's number for it"),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("first", sa.BigInteger, nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
        sa.Column("to_node", sa.String(16), nullable=False),
        sa.Column("company", sa.String(18), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("batch", sa.Integer, nullable=False, comment="the sender's batch that sent it"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_common_transfers")),
        sa.UniqueConstraint("sender", "transfer", name=op.f("uq_common_transfers_sender_transfer")),
    )
    op.create_index("ix_common_transfers_to_node", "common_transfers", ["to_node", "number"])


def _moves_append_only() -> None:
    """SQLite rebuilds a table it alters, without its triggers: `unit_moves` is append-only
    again (as migration 0014 made it; PostgreSQL alters in place and keeps them)."""
    if op.get_bind().dialect.name == "postgresql":
        return
    for event in ("update", "delete"):
        op.execute(f"drop trigger if exists unit_moves_append_only_{event}")
        op.execute(
            f"create trigger unit_moves_append_only_{event} before {event} on unit_moves "
            "begin select raise(abort, 'unit_moves is append-only: correct with another "
            "move'); end"
        )


def downgrade() -> None:
    op.drop_table("common_transfers")
    op.drop_table("common_unit_blocks")
    op.drop_table("common_unit_batches")
    op.drop_table("federation_sends")
    op.drop_table("common_methodology_nodes")
    op.drop_table("common_methodologies")
    op.drop_table("federation_methodologies")
    with op.batch_alter_table("federation_link") as batch:
        for column in ("oversight_at", "oversight", "inbox_through", "issued_through"):
            batch.drop_column(column)
    with op.batch_alter_table("unit_moves") as batch:
        batch.drop_constraint(batch.f("ck_unit_moves_kind"), type_="check")
        batch.create_check_constraint("kind", f"kind in ({_MOVES})")
        batch.drop_column("node")
    _moves_append_only()
    with op.batch_alter_table("unit_blocks") as batch:
        batch.drop_constraint(batch.f("ck_unit_blocks_owner"), type_="check")
        batch.create_check_constraint("owner", _OWNER)
        batch.drop_constraint(batch.f("ck_unit_blocks_holder"), type_="check")
        batch.create_check_constraint("holder", f"holder in ({_HOLDERS})")
        batch.drop_column("node")
    with op.batch_alter_table("unit_batches") as batch:
        batch.drop_constraint(batch.f("ck_unit_batches_imported"), type_="check")
        batch.drop_constraint(batch.f("uq_unit_batches_exchange_first_serial"), type_="unique")
        batch.create_unique_constraint(batch.f("uq_unit_batches_first_serial"), ["first_serial"])
        batch.alter_column("units_account_id", existing_type=sa.Integer, nullable=False)
        batch.alter_column("buffer_account_id", existing_type=sa.Integer, nullable=False)
        batch.drop_column("imported")
    with op.batch_alter_table("market_operations") as batch:
        batch.drop_constraint(batch.f("ck_market_operations_kind"), type_="check")
        batch.create_check_constraint("kind", f"kind in ({_OPERATIONS})")
