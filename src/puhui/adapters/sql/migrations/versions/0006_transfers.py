"""ledger v2: one transfer row per movement instead of an entry and its postings; statistics
count day and month participants without members

Every entry of two postings becomes one transfer with the entry's id, so that every id a
citizen, a platform or a certificate was given (`entry` in operations' results, `reverses`,
awards) names the same movement after the upgrade. An entry of more postings (a run of awards,
a run of expiries) becomes one transfer per leg of its many side (`domain.ledger.transfers_of`):
the first keeps the entry's id, the others take new ids and are linked to it. Awards then name
the transfer that paid the credit's citizen. Balances are unchanged: they are the same sums.

`tally_members` keeps only the dimensions whose participants are not counted from the ledger
of the chunk's own month (day and month participants are, see `adapters.sql.tallies`).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from puhui.adapters.sql import tallies
from puhui.domain.ledger import Entry, Posting, transfers_of

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
COLUMNS = (
    "id, kind, debit_account_id, credit_account_id, amount, record_seq, batch_id, linked_to, "
    "operation_id, reverses, created_at, expires_at"
)


def upgrade() -> None:
    op.create_table(
        "transfers",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column(
            "debit_account_id", sa.Integer(), nullable=False, comment="the amount is taken from it"
        ),
        sa.Column(
            "credit_account_id", sa.Integer(), nullable=False, comment="the amount is added to it"
        ),
        sa.Column(
            "amount", sa.BigInteger(), nullable=False, comment="grams CO2e, or points (unit pt)"
        ),
        sa.Column(
            "record_seq", sa.BigInteger(), nullable=True, comment="credits: the record credited"
        ),
        sa.Column(
            "batch_id", sa.Integer(), nullable=True, comment="credits: the batch that settled it"
        ),
        sa.Column(
            "linked_to",
            sa.BigInteger(),
            nullable=True,
            comment="the first transfer of the entry it was posted with; null: it is the first",
        ),
        sa.Column(
            "operation_id",
            sa.Integer(),
            nullable=True,
            comment="the citizen operation it records",
        ),
        sa.Column("reverses", sa.BigInteger(), nullable=True, comment="the transfer it reverses"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "expires_at", sa.DateTime(timezone=True), nullable=True, comment="points awarded"
        ),
        sa.CheckConstraint("amount > 0", name=op.f("ck_transfers_positive")),
        sa.CheckConstraint(
            "debit_account_id <> credit_account_id", name=op.f("ck_transfers_two_accounts")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transfers")),
    )
    # Entries of two postings, the bulk of the ledger, in one statement.
    op.execute(
        f"insert into transfers ({COLUMNS}) "
        "select e.id, e.kind, n.account_id, p.account_id, p.amount_g, e.record_seq, e.batch_id, "
        "null, e.operation_id, e.reverses, e.created_at, e.expires_at from entries e "
        "join postings p on p.entry_id = e.id and p.amount_g > 0 "
        "join postings n on n.entry_id = e.id and n.amount_g < 0 "
        "where (select count(*) from postings x where x.entry_id = e.id) = 2 order by e.id"
    )
    _split_entries_of_many_postings(op.get_bind())
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "select setval(pg_get_serial_sequence('transfers', 'id'), "
            "coalesce((select max(id) from transfers), 0) + 1, false)"
        )
    op.create_index(
        "uq_transfers_record_seq",
        "transfers",
        ["record_seq"],
        unique=True,
        sqlite_where=sa.text("record_seq is not null"),
        postgresql_where=sa.text("record_seq is not null"),
    )
    op.create_index("ix_transfers_debit_account_id", "transfers", ["debit_account_id", "id"])
    op.create_index("ix_transfers_credit_account_id", "transfers", ["credit_account_id", "id"])
    op.create_index(
        "ix_transfers_linked_to",
        "transfers",
        ["linked_to"],
        sqlite_where=sa.text("linked_to is not null"),
        postgresql_where=sa.text("linked_to is not null"),
    )
    op.create_index(
        "ix_transfers_operation_id",
        "transfers",
        ["operation_id"],
        sqlite_where=sa.text("operation_id is not null"),
        postgresql_where=sa.text("operation_id is not null"),
    )
    op.create_index(
        "uq_transfers_reverses",
        "transfers",
        ["reverses"],
        unique=True,
        sqlite_where=sa.text("reverses is not null"),
        postgresql_where=sa.text("reverses is not null"),
    )

    op.execute("alter table awards rename column credit_entry_id to credit_transfer_id")
    op.execute("alter table awards rename column award_entry_id to award_transfer_id")
    # An award run's entry paid many citizens: each credit now names its citizen's transfer.
    op.execute(
        "update awards set award_transfer_id = (select t.id from transfers t "
        "join accounts a on a.id = t.credit_account_id "
        "join transfers c on c.id = awards.credit_transfer_id "
        "join records r on r.seq = c.record_seq "
        "where (t.id = awards.award_transfer_id or t.linked_to = awards.award_transfer_id) "
        "and a.owner_id = r.subject_id) where award_transfer_id is not null"
    )
    op.drop_table("postings")
    op.drop_table("entries")
    op.execute("delete from tally_members where dimension in ('day', 'month')")


def _split_entries_of_many_postings(conn: sa.Connection) -> None:
    """Entries of more than two postings, one transfer per leg of their many side."""
    entries = conn.execute(
        sa.text(
            "select e.id, e.kind, e.record_seq, e.batch_id, e.operation_id, e.reverses, "
            "e.created_at, e.expires_at from entries e "
            "where (select count(*) from postings x where x.entry_id = e.id) > 2 order by e.id"
        )
    ).all()
    if not entries:
        return
    legs: dict[int, list[Posting]] = defaultdict(list)
    for entry_id, account, amount in conn.execute(
        sa.text(
            "select p.entry_id, p.account_id, p.amount_g from postings p "
            "where (select count(*) from postings x where x.entry_id = p.entry_id) > 2 "
            "order by p.entry_id, p.account_id"
        )
    ):
        legs[int(entry_id)].append(Posting(str(account), int(amount)))
    next_id = int(conn.execute(sa.text("select max(id) from entries")).scalar_one()) + 1
    rows = []
    for e in entries:
        for n, moved in enumerate(transfers_of(Entry(e.kind, tuple(legs[int(e.id)])))):
            first = n == 0
            rows.append(
                {
                    "id": int(e.id) if first else next_id,
                    "kind": e.kind,
                    "debit": int(moved.debit),
                    "credit": int(moved.credit),
                    "amount": moved.amount,
                    "record_seq": e.record_seq if first else None,
                    "batch_id": e.batch_id,
                    "linked_to": None if first else int(e.id),
                    "operation_id": e.operation_id,
                    "reverses": e.reverses if first else None,
                    "created_at": e.created_at,
                    "expires_at": e.expires_at,
                }
            )
            next_id += 0 if first else 1
    conn.execute(
        sa.text(
            f"insert into transfers ({COLUMNS}) values (:id, :kind, :debit, :credit, :amount, "
            ":record_seq, :batch_id, :linked_to, :operation_id, :reverses, :created_at, "
            ":expires_at)"
        ),
        rows,
    )


def downgrade() -> None:
    op.create_table(
        "entries",
        sa.Column("id", RowId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("record_seq", sa.BigInteger(), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operation_id", sa.Integer(), nullable=True),
        sa.Column("reverses", sa.BigInteger(), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_entries")),
        sa.UniqueConstraint("record_seq", name=op.f("uq_entries_record_seq")),
        sa.UniqueConstraint("reverses", name=op.f("uq_entries_reverses")),
    )
    op.create_index("ix_entries_operation_id", "entries", ["operation_id"])
    op.create_table(
        "postings",
        sa.Column("entry_id", sa.BigInteger(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount_g", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount_g <> 0", name=op.f("ck_postings_nonzero")),
        sa.PrimaryKeyConstraint("entry_id", "account_id", name=op.f("pk_postings")),
    )
    op.create_index("ix_postings_account", "postings", ["account_id", "entry_id"])
    op.execute(
        "insert into entries (id, kind, record_seq, batch_id, created_at, operation_id, "
        "reverses, expires_at) select id, kind, record_seq, batch_id, created_at, operation_id, "
        "reverses, expires_at from transfers where linked_to is null order by id"
    )
    op.execute(
        "insert into postings (entry_id, account_id, amount_g) "
        "select x.entry_id, x.account_id, sum(x.amount) from ("
        "select coalesce(linked_to, id) as entry_id, credit_account_id as account_id, amount "
        "from transfers union all "
        "select coalesce(linked_to, id), debit_account_id, -amount from transfers) x "
        "group by x.entry_id, x.account_id having sum(x.amount) <> 0"
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "select setval(pg_get_serial_sequence('entries', 'id'), "
            "coalesce((select max(id) from transfers), 0) + 1, false)"
        )
    op.execute(
        "update awards set award_transfer_id = (select coalesce(t.linked_to, t.id) "
        "from transfers t where t.id = awards.award_transfer_id) "
        "where award_transfer_id is not null"
    )
    op.execute("alter table awards rename column credit_transfer_id to credit_entry_id")
    op.execute("alter table awards rename column award_transfer_id to award_entry_id")
    op.drop_table("transfers")
    key = tallies.keys(op.get_bind().dialect.name)
    for dimension in ("day", "month"):
        op.execute(
            "insert into tally_members (dimension, key, subject_id) "
            f"select distinct '{dimension}', {key[dimension]}, r.subject_id from records r "
            "where r.status = 'credited'"
        )
