"""carbon market: companies, certified batches of units, serial blocks, trades, retirements

- `companies`, known by their unified social credit code, with API credentials of their own
  (`credentials` names a platform or a company);
- `market_operations`: what the exchange or a company did, keyed by the client's
  idempotency key;
- accounts of kind `pool` (certified grams waiting for a batch), `units` and `buffer` (the
  grams behind a batch's units and its buffer);
- `pool_credits` (each credit certified, once), `unit_batches` with their Merkle roots and
  `batch_credits` (the leaves) and `batch_nodes` (the roots of runs of 1 024 leaves, which
  proofs are built from), `unit_blocks` (who holds which serial numbers) and
  `unit_moves` (every move of units, append-only), `unit_trades`, `unit_retirements` and
  `buffer_draws` (reversals of certified credits and the shortfalls of buffers).

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels = None
depends_on = None

_KINDS = "citizen, issuance, points, programme, expired, retired, reward, held"
_MOVES_TRIGGERS = ("update", "delete")


def _kind(market: bool) -> str:
    kinds = "'points', 'programme', 'expired', 'retired', 'reward', 'held'"
    if market:
        kinds += ", 'pool', 'units', 'buffer'"
    return (
        "(kind = 'citizen' and subject_id is not null and unit = 'g') or "
        "(kind = 'issuance' and platform_id is not null and methodology is not null "
        f"and unit = 'g') or (kind in ({kinds}) and code is not null)"
    )


def upgrade() -> None:
    with op.batch_alter_table("programmes") as batch:
        batch.add_column(
            sa.Column(
                "certifies",
                sa.Boolean,
                nullable=False,
                server_default=sa.false(),
                comment="its terms let the exchange certify its members' credits, paid in its "
                "points",
            )
        )
    op.create_table(
        "companies",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("uscc", sa.String(18), nullable=False, comment="unified social credit code"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("uscc", name=op.f("uq_companies_uscc")),
    )
    with op.batch_alter_table("credentials") as batch:
        batch.alter_column("platform_id", existing_type=sa.Integer, nullable=True)
        batch.add_column(sa.Column("company_id", sa.Integer, nullable=True))
        batch.create_foreign_key(
            batch.f("fk_credentials_company_id_companies"), "companies", ["company_id"], ["id"]
        )
        batch.create_check_constraint("holder", "(platform_id is null) <> (company_id is null)")
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column(
            "kind",
            existing_type=sa.String(16),
            existing_nullable=False,
            comment=_KINDS + ", pool, units, buffer",
        )
        batch.drop_constraint(batch.f("ck_accounts_kind"), type_="check")
        batch.create_check_constraint("kind", _kind(True))
    op.create_table(
        "market_operations",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("party", sa.String(40), nullable=False, comment="'exchange', or 'company:<id>'"),
        sa.Column(
            "idempotency_key", sa.String(128), nullable=False, comment="chosen by the client"
        ),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "request_digest", sa.String(64), nullable=False, comment="SHA-256 of the request"
        ),
        sa.Column("actor", sa.String(80), nullable=False, comment="who asked: staff or company"),
        sa.Column("result", sa.Text, nullable=False, comment="JSON: what was done"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind in ('certify', 'sell', 'transfer', 'retire', 'reverse')",
            name=op.f("ck_market_operations_kind"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_market_operations")),
        sa.UniqueConstraint(
            "party", "idempotency_key", name=op.f("uq_market_operations_party_idempotency_key")
        ),
    )
    op.create_table(
        "unit_batches",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("exchange", sa.String(2), nullable=False),
        sa.Column("methodology", sa.String(96), nullable=False, comment="id@version"),
        sa.Column("region", sa.String(6), nullable=False, comment="GB/T 2260 prefix"),
        sa.Column("vintage", sa.String(7), nullable=False, comment="the period certified, YYYY-MM"),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("buffer_units", sa.Integer, nullable=False, comment="withheld against reversals"),
        sa.Column(
            "buffer_bp", sa.Integer, nullable=False, comment="the buffer share, basis points"
        ),
        sa.Column("first_serial", sa.BigInteger, nullable=False),
        sa.Column("last_serial", sa.BigInteger, nullable=False),
        sa.Column("leaves", sa.Integer, nullable=False, comment="credits in its Merkle tree"),
        sa.Column("root", sa.String(64), nullable=False, comment="Merkle root (RFC 9162), hex"),
        sa.Column("units_account_id", sa.Integer, nullable=False),
        sa.Column("buffer_account_id", sa.Integer, nullable=False),
        sa.Column("certified_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "units > 0 and buffer_units >= 0 and buffer_units <= units",
            name=op.f("ck_unit_batches_units"),
        ),
        sa.CheckConstraint(
            "last_serial - first_serial + 1 = units", name=op.f("ck_unit_batches_serials")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["market_operations.id"],
            name=op.f("fk_unit_batches_operation_id_market_operations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_batches")),
        sa.UniqueConstraint("first_serial", name=op.f("uq_unit_batches_first_serial")),
    )
    op.create_table(
        "pool_credits",
        sa.Column("record_seq", sa.BigInteger, autoincrement=False, nullable=False),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("subject_id", sa.Integer, nullable=False),
        sa.Column("pool_account_id", sa.Integer, nullable=False),
        sa.Column(
            "grams", sa.BigInteger, nullable=False, comment="the whole credit, certified once"
        ),
        sa.CheckConstraint("grams > 0", name=op.f("ck_pool_credits_grams")),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["market_operations.id"],
            name=op.f("fk_pool_credits_operation_id_market_operations"),
        ),
        sa.PrimaryKeyConstraint("record_seq", name=op.f("pk_pool_credits")),
    )
    op.create_index("ix_pool_credits_pool_account_id", "pool_credits", ["pool_account_id"])
    op.create_table(
        "batch_credits",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False, comment="the leaf's index in the tree"),
        sa.Column("record_seq", sa.BigInteger, nullable=False),
        sa.Column("grams", sa.BigInteger, nullable=False, comment="of the credit, in this batch"),
        sa.CheckConstraint("grams > 0", name=op.f("ck_batch_credits_grams")),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["unit_batches.id"], name=op.f("fk_batch_credits_batch_id_unit_batches")
        ),
        sa.PrimaryKeyConstraint("batch_id", "position", name=op.f("pk_batch_credits")),
        sa.UniqueConstraint(
            "batch_id", "record_seq", name=op.f("uq_batch_credits_batch_id_record_seq")
        ),
    )
    op.create_index("ix_batch_credits_record_seq", "batch_credits", ["record_seq"])
    op.create_table(
        "batch_nodes",
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column(
            "chunk",
            sa.Integer,
            nullable=False,
            comment="leaves chunk × 1024 to chunk × 1024 + 1023",
        ),
        sa.Column(
            "hash", sa.String(64), nullable=False, comment="the Merkle root of those leaves, hex"
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["unit_batches.id"], name=op.f("fk_batch_nodes_batch_id_unit_batches")
        ),
        sa.PrimaryKeyConstraint("batch_id", "chunk", name=op.f("pk_batch_nodes")),
    )
    op.create_table(
        "unit_blocks",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("first", sa.BigInteger, nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
        sa.Column(
            "holder",
            sa.String(10),
            nullable=False,
            comment="exchange, company, buffer, retired, cancelled",
        ),
        sa.Column("company_id", sa.Integer, nullable=True),
        sa.Column(
            "retirement_id", sa.Integer, nullable=True, comment="retired units: their retirement"
        ),
        sa.CheckConstraint('"first" <= "last"', name=op.f("ck_unit_blocks_range")),
        sa.CheckConstraint(
            "holder in ('exchange', 'company', 'buffer', 'retired', 'cancelled')",
            name=op.f("ck_unit_blocks_holder"),
        ),
        sa.CheckConstraint(
            "(holder in ('company', 'retired')) = (company_id is not null) "
            "and (holder = 'retired') = (retirement_id is not null)",
            name=op.f("ck_unit_blocks_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["unit_batches.id"], name=op.f("fk_unit_blocks_batch_id_unit_batches")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_unit_blocks_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_blocks")),
    )
    op.create_index("ix_unit_blocks_holder", "unit_blocks", ["holder", "company_id"])
    op.create_index("ix_unit_blocks_batch_id", "unit_blocks", ["batch_id", "first"])
    op.create_table(
        "unit_moves",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("batch_id", sa.Integer, nullable=False),
        sa.Column("first", sa.BigInteger, nullable=False),
        sa.Column("last", sa.BigInteger, nullable=False),
        sa.Column("from_holder", sa.String(10), nullable=True, comment="null: issued"),
        sa.Column("from_company", sa.Integer, nullable=True),
        sa.Column("to_holder", sa.String(10), nullable=False),
        sa.Column("to_company", sa.Integer, nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('"first" <= "last"', name=op.f("ck_unit_moves_range")),
        sa.CheckConstraint(
            "kind in ('issue', 'sell', 'transfer', 'retire', 'cancel')",
            name=op.f("ck_unit_moves_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["market_operations.id"],
            name=op.f("fk_unit_moves_operation_id_market_operations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_moves")),
    )
    op.create_index("ix_unit_moves_batch_id", "unit_moves", ["batch_id"])
    op.create_table(
        "unit_trades",
        sa.Column("operation_id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("company_id", sa.Integer, nullable=False),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("unit_price_fen", sa.BigInteger, nullable=False, comment="CNY cents a unit"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("units > 0 and unit_price_fen >= 0", name=op.f("ck_unit_trades_trade")),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_unit_trades_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["market_operations.id"],
            name=op.f("fk_unit_trades_operation_id_market_operations"),
        ),
        sa.PrimaryKeyConstraint("operation_id", name=op.f("pk_unit_trades")),
    )
    op.create_table(
        "unit_retirements",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column("company_id", sa.Integer, nullable=False),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("beneficiary", sa.Text, nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("units > 0", name=op.f("ck_unit_retirements_units")),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_unit_retirements_company_id_companies"),
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["market_operations.id"],
            name=op.f("fk_unit_retirements_operation_id_market_operations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unit_retirements")),
        sa.UniqueConstraint("operation_id", name=op.f("uq_unit_retirements_operation_id")),
    )
    op.create_table(
        "buffer_draws",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("operation_id", sa.Integer, nullable=False),
        sa.Column(
            "record_seq", sa.BigInteger, nullable=False, comment="the certified credit reversed"
        ),
        sa.Column(
            "batch_id", sa.Integer, nullable=True, comment="null: its grams still in the pool"
        ),
        sa.Column(
            "grams", sa.BigInteger, nullable=False, comment="of the credit, in the batch or pool"
        ),
        sa.Column("drawn_g", sa.BigInteger, nullable=False, comment="from the buffer, or the pool"),
        sa.Column(
            "shortfall_g", sa.BigInteger, nullable=False, comment="what the buffer could not cover"
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "drawn_g + shortfall_g = grams and shortfall_g >= 0", name=op.f("ck_buffer_draws_draw")
        ),
        sa.ForeignKeyConstraint(
            ["operation_id"],
            ["market_operations.id"],
            name=op.f("fk_buffer_draws_operation_id_market_operations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_buffer_draws")),
        sa.UniqueConstraint(
            "record_seq", "batch_id", name=op.f("uq_buffer_draws_record_seq_batch_id")
        ),
    )
    _append_only("unit_moves")


def _append_only(table: str) -> None:
    """Moves of units are never changed: a correction is another move (as `transfers`)."""
    if op.get_bind().dialect.name == "postgresql":
        for event in _MOVES_TRIGGERS:
            op.execute(
                f"create trigger {table}_append_only_{event} before {event} on {table} "
                "for each row execute function puhui_append_only()"
            )
        op.execute(
            f"create trigger {table}_append_only_truncate before truncate on {table} "
            "for each statement execute function puhui_append_only()"
        )
    else:
        for event in _MOVES_TRIGGERS:
            op.execute(
                f"create trigger {table}_append_only_{event} before {event} on {table} "
                f"begin select raise(abort, '{table} is append-only: correct with another "
                "move'); end"
            )


def downgrade() -> None:
    events = (*_MOVES_TRIGGERS, "truncate")
    for event in events:
        if event == "truncate" and op.get_bind().dialect.name != "postgresql":
            continue
        op.execute(
            f"drop trigger if exists unit_moves_append_only_{event} on unit_moves"
            if op.get_bind().dialect.name == "postgresql"
            else f"drop trigger if exists unit_moves_append_only_{event}"
        )
    for table in (
        "buffer_draws",
        "unit_retirements",
        "unit_trades",
        "unit_moves",
        "unit_blocks",
        "batch_nodes",
        "batch_credits",
        "pool_credits",
        "unit_batches",
        "market_operations",
    ):
        op.drop_table(table)
    with op.batch_alter_table("accounts") as batch:
        batch.alter_column(
            "kind", existing_type=sa.String(16), existing_nullable=False, comment=_KINDS
        )
        batch.drop_constraint(batch.f("ck_accounts_kind"), type_="check")
        batch.create_check_constraint("kind", _kind(False))
    with op.batch_alter_table("credentials") as batch:
        batch.drop_constraint(batch.f("ck_credentials_holder"), type_="check")
        batch.drop_constraint(batch.f("fk_credentials_company_id_companies"), type_="foreignkey")
        batch.drop_column("company_id")
        batch.alter_column("platform_id", existing_type=sa.Integer, nullable=False)
    op.drop_table("companies")
    with op.batch_alter_table("programmes") as batch:
        batch.drop_column("certifies")
