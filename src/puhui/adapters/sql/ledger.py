"""The ledger writer: every transfer and every balance change goes through here.

Writers share it: intake posts the credits of a settled chunk (`post_credits`, one transfer
per credited record, set-based), citizens' operations and the scheduled jobs post entries
(`post`, one transfer per leg of the entry's many side, linked to the first), and a
restatement the entries of a chunk of citizens (`post_transfers`, two legs each, in one
statement). All change balances in one lock order, citizens' own accounts first, then the
shared ones (issuance, rewards, programmes…), each by id, so that concurrent writers queue and
never deadlock. A debit of an account that may not go below zero is a conditional update
(`balance >= amount`).

Every transaction that writes transfers is one ledger commit (`ledger_commits`, see
`domain.chain`): its first transfer writes the commit row, and every transfer it writes names
it. The PL/pgSQL operations of PostgreSQL write their own (migration 0010).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, text
from sqlalchemy.engine import Transaction

from puhui.adapters.sql import bulk
from puhui.adapters.sql import tables as t
from puhui.domain.errors import InsufficientBalance, LedgerError
from puhui.domain.ledger import Entry, Posting, Transfer, transfers_of

# Accounts of one citizen; the others are shared by many writers and come last.
OWNED = ("citizen", "points", "retired", "held")
# A leg of an entry: account id, amount (+ in, − out), whether the account may not go below
# zero (its debit is then guarded).
Leg = tuple[int, int, bool]
# Where a connection keeps the commit of its current transaction: (transaction, savepoint,
# commit id). A transaction rolled back to before its commit row was written gets a new one.
_COMMIT = "puhui.ledger_commit"


def commit_id(conn: Connection, at: datetime) -> int:
    """The ledger commit of the connection's transaction, its row written on first use."""
    found = _current_commit(conn)
    if found is not None:
        return found
    new = int(
        conn.execute(
            insert(t.ledger_commits).values(at=at).returning(t.ledger_commits.c.id)
        ).scalar_one()
    )
    _remember(conn, new)
    return new


def _current_commit(conn: Connection) -> int | None:
    cached: tuple[Transaction | None, Transaction | None, int] | None = conn.info.get(_COMMIT)
    if cached is None:
        return None
    transaction, savepoint, commit = cached
    if transaction is not conn.get_transaction() or savepoint is not conn.get_nested_transaction():
        return None
    return commit


def _remember(conn: Connection, commit: int) -> None:
    conn.info[_COMMIT] = (conn.get_transaction(), conn.get_nested_transaction(), commit)


def post(
    conn: Connection,
    kind: str,
    legs: list[Leg],
    at: datetime,
    *,
    operation: int | None = None,
    reverses: int | None = None,
    expires_at: datetime | None = None,
) -> int:
    """Post one balanced entry and return the id of its first transfer (the entry's id).

    Raises:
        UnbalancedEntryError: the legs do not sum to zero.
        LedgerError: grams and points mixed, or retired grams taken out.
        InsufficientBalance: a guarded account would go below zero.
    """
    entry = Entry(kind, tuple(Posting(str(account), amount) for account, amount, _ in legs))
    accounts = {
        account_id: (account_kind, unit)
        for account_id, account_kind, unit in conn.execute(
            select(t.accounts.c.id, t.accounts.c.kind, t.accounts.c.unit).where(
                t.accounts.c.id.in_([a for a, _, _ in legs])
            )
        ).all()
    }
    if len({unit for _, unit in accounts.values()}) != 1:
        raise LedgerError("an entry moves grams or points, never both")
    if any(amount < 0 and accounts[a][0] == "retired" for a, amount, _ in legs):
        raise LedgerError("retired grams are never taken out again")
    commit = commit_id(conn, at)
    moves = transfers_of(entry)
    row = {
        "kind": kind,
        "operation_id": operation,
        "created_at": at,
        "expires_at": expires_at,
        "commit_id": commit,
    }
    first = int(
        conn.execute(
            insert(t.transfers)
            .values(
                debit_account_id=int(moves[0].debit),
                credit_account_id=int(moves[0].credit),
                amount=moves[0].amount,
                linked_to=None,
                reverses=reverses,
                **row,
            )
            .returning(t.transfers.c.id)
        ).scalar_one()
    )
    if len(moves) > 1:
        # The entry's other transfers in one statement, in order (ids ascending), linked to
        # its first: an award or a certification moves one amount per citizen.
        conn.execute(
            insert(t.transfers),
            [
                {
                    "debit_account_id": int(m.debit),
                    "credit_account_id": int(m.credit),
                    "amount": m.amount,
                    "linked_to": first,
                    "reverses": None,
                    **row,
                }
                for m in moves[1:]
            ],
        )
    apply_balances(conn, legs, {a: k for a, (k, _) in accounts.items()})
    return first


def post_transfers(
    conn: Connection,
    kind: str,
    moves: Sequence[tuple[int, int, int]],
    at: datetime,
    guarded: AbstractSet[int] = frozenset(),
) -> list[int]:
    """Post entries of two legs each, `(debit account, credit account, amount)`, in one
    statement, and return their ids in order; debits of the `guarded` accounts may not take
    them below zero.

    Raises:
        UnbalancedEntryError: an amount not a positive whole number, or one account twice.
        LedgerError: grams and points mixed, or retired grams taken out.
        InsufficientBalance: a guarded account would go below zero.
    """
    if not moves:
        return []
    for debit, credit, amount in moves:
        Transfer(str(debit), str(credit), amount)
    ids = sorted({a for d, c, _ in moves for a in (d, c)})
    found = {
        account_id: (account_kind, unit)
        for account_id, account_kind, unit in conn.execute(
            select(t.accounts.c.id, t.accounts.c.kind, t.accounts.c.unit).where(
                t.accounts.c.id.in_(ids)
            )
        ).all()
    }
    for debit, credit, _ in moves:
        if found[debit][1] != found[credit][1]:
            raise LedgerError("an entry moves grams or points, never both")
        if found[debit][0] == "retired":
            raise LedgerError("retired grams are never taken out again")
    commit = commit_id(conn, at)
    written = conn.execute(
        insert(t.transfers).returning(t.transfers.c.id, sort_by_parameter_order=True),
        [
            {
                "kind": kind,
                "debit_account_id": debit,
                "credit_account_id": credit,
                "amount": amount,
                "created_at": at,
                "commit_id": commit,
            }
            for debit, credit, amount in moves
        ],
    ).scalars()
    transfers = [int(i) for i in written]
    legs = [
        leg
        for debit, credit, amount in moves
        for leg in ((debit, -amount, debit in guarded), (credit, amount, False))
    ]
    apply_balances(conn, legs, {a: k for a, (k, _) in found.items()})
    return transfers


def apply_balances(conn: Connection, legs: Iterable[Leg], kinds: dict[int, str]) -> None:
    """Change balances in the one lock order (citizens' own accounts, then shared ones, each by
    id); runs of the same kind of change go to the database together."""
    ordered = sorted(legs, key=lambda leg: (kinds[leg[0]] not in OWNED, leg[0]))
    run: list[Leg] = []
    for i, leg in enumerate(ordered):
        run.append(leg)
        if i + 1 == len(ordered) or _guarded(ordered[i + 1]) != _guarded(leg):
            _apply(conn, run)
            run = []


def _guarded(leg: Leg) -> bool:
    """Whether a leg takes from an account that may not go below zero."""
    return leg[1] < 0 and leg[2]


def _apply(conn: Connection, run: list[Leg]) -> None:
    """Change the balances of a run of legs of one kind: guarded debits, or additions."""
    if _guarded(run[0]):
        changed = conn.execute(
            text(
                "update balances set balance_g = balance_g + :g "
                "where account_id = :a and balance_g >= -:g"
            ),
            [{"a": a, "g": amount} for a, amount, _ in run],
        ).rowcount
        if changed != len(run):
            raise _short(conn, run)
        return
    conn.execute(
        text(
            "insert into balances (account_id, balance_g) values (:a, :g) "
            "on conflict (account_id) do update "
            "set balance_g = balances.balance_g + excluded.balance_g"
        ),
        [{"a": a, "g": amount} for a, amount, _ in run],
    )


def _short(conn: Connection, run: list[Leg]) -> InsufficientBalance:
    """What a run of guarded debits found short: the first account holding less than its leg
    takes, with what it holds."""
    accounts = [a for a, _, _ in run]
    held = {
        account_id: (int(balance or 0), unit)
        for account_id, balance, unit in conn.execute(
            select(t.accounts.c.id, t.balances.c.balance_g, t.accounts.c.unit)
            .select_from(
                t.accounts.outerjoin(t.balances, t.balances.c.account_id == t.accounts.c.id)
            )
            .where(t.accounts.c.id.in_(accounts))
        ).all()
    }
    for account, amount, _ in run:
        balance, unit = held[account]
        if balance < -amount:
            return InsufficientBalance(balance, -amount, unit)
    # Another debit of the same account in the run took what this one needed.
    account, amount, _ = run[0]
    return InsufficientBalance(held[account][0], -amount, held[account][1])


_CREDITED = "r.seq between :lo and :hi and r.status = 'credited' and r.reduction_g > 0"
# Held records (spec v1.1): their grams wait in the citizen's held account (`hold` transfers).
_HELD = "r.seq between :lo and :hi and r.status = 'held' and r.reduction_g > 0"
_ISSUED = (
    "r.seq between :lo and :hi and (r.status = 'credited' or r.status = 'held') "
    "and r.reduction_g > 0"
)
# The statements of `post_credits`, built once (an API group runs them for a few records).
# Accounts the chunk's credits need and nobody opened yet, the citizens' (and their held
# accounts, for held records) and the issuing platform's for each methodology, in one
# statement. A citizen's own operation may open an account at the same moment: `on conflict do
# nothing` leaves it to whoever came first.
_OPEN_ACCOUNTS = text(
    "insert into accounts (kind, subject_id, platform_id, methodology, code, owner_id) "
    "select x.kind, x.subject_id, x.platform_id, x.methodology, x.code, x.owner_id from ("
    "select 'citizen' as kind, c.subject_id, cast(null as integer) as platform_id, "
    "cast(null as varchar(96)) as methodology, cast(null as varchar(160)) as code, "
    "cast(null as integer) as owner_id "
    # Each citizen and each (platform, methodology) of the chunk is looked for once, not once
    # for each of its records.
    f"from (select distinct r.subject_id from records r where {_CREDITED}) c "
    "where not exists (select 1 from accounts a where a.subject_id = c.subject_id) "
    "union all select 'issuance', cast(null as integer), i.platform_id, i.methodology, "
    "cast(null as varchar(160)), cast(null as integer) "
    f"from (select distinct r.platform_id, r.methodology from records r where {_ISSUED}) i "
    "where not exists (select 1 from accounts a where a.platform_id = i.platform_id "
    "and a.methodology = i.methodology) "
    "union all select 'held', cast(null as integer), cast(null as integer), "
    "cast(null as varchar(96)), 'held:' || cast(h.subject_id as varchar(12)), h.subject_id "
    f"from (select distinct r.subject_id from records r where {_HELD}) h "
    "where not exists (select 1 from accounts a "
    "where a.code = 'held:' || cast(h.subject_id as varchar(12)))"
    # `where true` lets SQLite tell the upsert clause from a join. Accounts are numbered in
    # the order of their owners, whatever plan the database chose for the distinct values.
    ") x where true order by x.kind, x.subject_id, x.platform_id, x.methodology, x.owner_id "
    "on conflict do nothing"
)
# Transfer ids come from the database (a sequence on PostgreSQL, the rowid on SQLite), so that
# the citizens' own operations never queue behind a chunk for an id.
_POST = text(
    "insert into transfers (kind, debit_account_id, credit_account_id, amount, "
    "record_seq, batch_id, created_at, commit_id) "
    "select 'credit', i.id, a.id, r.reduction_g, r.seq, :batch, :at, :commit from records r "
    "join accounts a on a.subject_id = r.subject_id "
    "join accounts i on i.platform_id = r.platform_id and i.methodology = r.methodology "
    f"where {_CREDITED} order by r.seq"
).bindparams(bindparam("at", type_=t.transfers.c.created_at.type))
_POST_HELD = text(
    "insert into transfers (kind, debit_account_id, credit_account_id, amount, "
    "record_seq, batch_id, created_at, commit_id) "
    "select 'hold', i.id, h.id, r.reduction_g, r.seq, :batch, :at, :commit from records r "
    "join accounts h on h.code = 'held:' || cast(r.subject_id as varchar(12)) "
    "join accounts i on i.platform_id = r.platform_id and i.methodology = r.methodology "
    f"where {_HELD} order by r.seq"
).bindparams(bindparam("at", type_=t.transfers.c.created_at.type))
_ANY_HELD = text(f"select 1 from records r where {_HELD} limit 1")
# The chunk's commit row, when it credits or holds anything (a chunk of replays writes no
# transfer, and no commit).
_COMMIT_IF_CREDITED = text(
    f"insert into ledger_commits (at) select :at where exists (select 1 from records r "
    f"where {_ISSUED}) returning id"
).bindparams(bindparam("at", type_=t.ledger_commits.c.at.type))
# One change per account of the chunk, in the lock order of `apply_balances`: the legs are
# added up per account before each account's kind is read. `where true` lets SQLite tell the
# upsert clause from a join.
_SUM_BALANCES = text(
    "insert into balances (account_id, balance_g) "
    "select x.account_id, x.amount from ("
    "select account_id, sum(amount) as amount from ("
    "select credit_account_id as account_id, amount from transfers "
    "where record_seq between :lo and :hi "
    "union all select debit_account_id, -amount from transfers "
    "where record_seq between :lo and :hi) legs group by account_id) x "
    "join accounts a on a.id = x.account_id where true "
    f"order by a.kind not in ({', '.join(repr(k) for k in OWNED)}), x.account_id "
    "on conflict (account_id) do update set balance_g = balances.balance_g + excluded.balance_g"
)


def post_credits(
    conn: Connection, batch_id: int, first_seq: int, last_seq: int, at: datetime
) -> int:
    """Post one transfer per credited record with seq in [first_seq, last_seq]: from the
    issuing platform's account for the methodology to the citizen's account; and one pending
    `hold` per held record, into the citizen's held account. Accounts are opened on first use;
    balances change once per account of the chunk. Returns the count."""
    span = {"lo": first_seq, "hi": last_seq}
    written = last_seq - first_seq + 1
    bulk.refresh_statistics(conn, "records", written, "seq")
    conn.execute(_OPEN_ACCOUNTS, span)
    bulk.refresh_statistics(conn, "accounts", written)
    commit = _current_commit(conn)
    if commit is None:
        commit = conn.execute(_COMMIT_IF_CREDITED, {**span, "at": at}).scalar()
        if commit is None:
            return 0
        _remember(conn, int(commit))
    values = {**span, "batch": batch_id, "at": at, "commit": commit}
    posted = conn.execute(_POST, values).rowcount
    if conn.execute(_ANY_HELD, span).first() is not None:
        posted += conn.execute(_POST_HELD, values).rowcount
    if not posted:
        return 0
    bulk.refresh_statistics(conn, "transfers", written)
    conn.execute(_SUM_BALANCES, span)
    return int(posted)


def legs(accounts: str, where: str = "1 = 1") -> str:
    """A row source of the legs of the transfers in and out of the accounts `accounts` (SQL:
    a list of bound account ids) that satisfy `where` (over `x`, the transfer): id,
    created_at, kind, amount_g (+ in, − out), account_id and record_seq, the postings of a
    double-entry ledger. Each side reads its own index."""
    columns = "x.id, x.created_at, x.kind, x.record_seq"
    return (
        f"(select {columns}, x.amount as amount_g, x.credit_account_id as account_id "
        f"from transfers x where x.credit_account_id in ({accounts}) and {where} "
        f"union all select {columns}, -x.amount, x.debit_account_id from transfers x "
        f"where x.debit_account_id in ({accounts}) and {where})"
    )
