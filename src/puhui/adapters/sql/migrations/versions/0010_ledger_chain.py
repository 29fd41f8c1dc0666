"""The ledger proves itself: append-only ledger rows, commits and their hash chain.

Every database transaction that writes transfers is now one *commit* (`ledger_commits`), named
by each transfer it wrote (`transfers.commit_id`). The transfers written before this revision
become one genesis commit, dated by the latest of them (none on an empty ledger); the sealer
(`adapters.sql.chain`) links commits into `ledger_chain` as it seals them, this genesis commit
first, and `ledger_checkpoints` keeps the signed checkpoints of the chain's head. See
`domain.chain` and docs/ledger.md.

`transfers` and the three new tables are append-only in the database itself: triggers named
`<table>_append_only_update` and `<table>_append_only_delete` (and, on PostgreSQL,
`<table>_append_only_truncate`) refuse the change. On PostgreSQL `puhui_redeem`,
`puhui_retire` and `puhui_give` are those of revision 0009 with one change: the transfer they
post is stamped with a commit row of its own, written just before it.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels = None
depends_on = None

TABLES = ("transfers", "ledger_commits", "ledger_chain", "ledger_checkpoints")
OPERATIONS = ("puhui_redeem", "puhui_retire", "puhui_give")


def upgrade() -> None:
    op.create_table(
        "ledger_commits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "at", sa.DateTime(timezone=True), nullable=False, comment="when its transaction wrote"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_commits")),
    )
    op.create_table(
        "ledger_chain",
        sa.Column("position", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("commit_id", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False, comment="SHA-256 of its transfers, hex"),
        sa.Column(
            "chain", sa.String(64), nullable=False, comment="SHA-256 linking it to the one before"
        ),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_ledger_chain")),
        sa.UniqueConstraint("commit_id", name=op.f("uq_ledger_chain_commit_id")),
    )
    op.create_table(
        "ledger_checkpoints",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "position", sa.BigInteger(), nullable=False, comment="the chain's head when signed"
        ),
        sa.Column("chain", sa.String(64), nullable=False, comment="the chain value there, hex"),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False, comment="of the checkpoints key"),
        sa.Column("signature", sa.String(128), nullable=False, comment="Ed25519, hex"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_checkpoints")),
    )
    _carry_transfers()
    op.create_index("ix_transfers_commit_id", "transfers", ["commit_id"])
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        op.execute(APPEND_ONLY_FUNCTION)
        for table in TABLES:
            for event in ("update", "delete"):
                op.execute(
                    f"create trigger {table}_append_only_{event} before {event} on {table} "
                    "for each row execute function puhui_append_only()"
                )
            op.execute(
                f"create trigger {table}_append_only_truncate before truncate on {table} "
                "for each statement execute function puhui_append_only()"
            )
        for function in _functions_of_0009():
            op.execute(_with_commit(function))
    else:
        for table in TABLES:
            for event in ("update", "delete"):
                op.execute(
                    f"create trigger {table}_append_only_{event} before {event} on {table} "
                    f"begin select raise(abort, '{table} is append-only: correct with a "
                    "reversing transfer'); end"
                )


def _carry_transfers() -> None:
    """The transfers written so far: one genesis commit, dated by the latest of them."""
    conn = op.get_bind()
    genesis = conn.execute(
        sa.text(
            "insert into ledger_commits (at) select (select max(created_at) from transfers) "
            "where exists (select 1 from transfers) returning id"
        )
    ).scalar()
    if genesis is None:
        op.add_column(
            "transfers",
            sa.Column(
                "commit_id",
                sa.BigInteger(),
                nullable=True,
                comment="the ledger commit (database transaction) that wrote it",
            ),
        )
        return
    if conn.dialect.name == "postgresql":
        # A constant default fills the existing rows without rewriting the table; dropping it
        # leaves them their value and new rows none.
        op.execute(f"alter table transfers add column commit_id bigint default {int(genesis)}")
        op.execute("alter table transfers alter column commit_id drop default")
        op.execute(
            "comment on column transfers.commit_id is "
            "'the ledger commit (database transaction) that wrote it'"
        )
        return
    op.add_column(
        "transfers",
        sa.Column(
            "commit_id",
            sa.BigInteger(),
            nullable=True,
            comment="the ledger commit (database transaction) that wrote it",
        ),
    )
    conn.execute(sa.text("update transfers set commit_id = :g"), {"g": int(genesis)})


def downgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name == "postgresql":
        for function in _functions_of_0009():
            op.execute(_replacing(function))
    on = conn.dialect.name == "postgresql"
    for table in TABLES:
        for event in ("update", "delete", "truncate"):
            op.execute(
                f"drop trigger if exists {table}_append_only_{event}"
                + (f" on {table}" if on else "")
            )
    if conn.dialect.name == "postgresql":
        op.execute("drop function if exists puhui_append_only")
    op.drop_index("ix_transfers_commit_id", table_name="transfers")
    with op.batch_alter_table("transfers") as batch:
        batch.drop_column("commit_id")
    op.drop_table("ledger_checkpoints")
    op.drop_table("ledger_chain")
    op.drop_table("ledger_commits")


APPEND_ONLY_FUNCTION = """
create function puhui_append_only() returns trigger language plpgsql as $$
begin
    raise exception using errcode = 'PH405',
        message = format('%s is append-only: correct with a reversing transfer', tg_table_name);
end $$
"""


def _functions_of_0009() -> list[str]:
    """The text of 0009's operations' functions, as that revision created them."""
    path = Path(__file__).with_name("0009_reward_shards.py")
    spec = importlib.util.spec_from_file_location("puhui_migration_0009", path)
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = [f for f in module.FUNCTIONS if _name(f) in OPERATIONS]
    assert sorted(_name(f) for f in found) == sorted(OPERATIONS)
    return found


def _name(function: str) -> str:
    match = re.search(r"create function (\w+)", function)
    return match.group(1) if match else ""


def _replacing(function: str) -> str:
    return function.replace("create function", "create or replace function", 1)


# The transfer each operation posts, with its commit row written just before it.
_POST = re.compile(
    r"(?P<indent>[ ]*)insert into transfers \((?P<columns>[^)]*?)created_at\)\n"
    r"(?P<values_indent>[ ]*)values \((?P<values>[^)]*?), p_at\)"
)


def _with_commit(function: str) -> str:
    """0009's function, its transfer stamped with a new commit row."""

    def stamped(match: re.Match[str]) -> str:
        indent = match["indent"]
        return (
            f"{indent}insert into ledger_commits (at) values (p_at) returning id into v_commit;\n"
            f"{indent}insert into transfers ({match['columns']}created_at, commit_id)\n"
            f"{match['values_indent']}values ({match['values']}, p_at, v_commit)"
        )

    text, posts = _POST.subn(stamped, _replacing(function))
    assert posts == 1, f"{_name(function)} posts one transfer"
    text, declared = re.subn(r"\ndeclare\n", "\ndeclare\n    v_commit bigint;\n", text, count=1)
    assert declared == 1
    return text
